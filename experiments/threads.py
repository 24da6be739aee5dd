"""Thread pools against each other for one preset, each timing in its own process, in alternating rounds.

  python -m experiments.threads --model fast --batch_sizes 8,64 --rounds 3

TensorFlow fixes its intra-op and inter-op pools when it starts, so each timing is a child
process (this module with `--child INTRA,INTER`) that times float32 and mixed_bfloat16
trainers of the preset on a fixed random batch at 64x64, in interleaved rounds
(`experiments.matmul_grad_step.alternating_rounds`), and prints both rates. Rounds alternate
the settings, so a machine that slows down slows every setting alike. Prints one row per
batch, policy and setting, with the median over the rounds. Until issue 48 `--precision auto`
ran such timings before a run; its rule (training/precision.py) rests on this experiment's
tables in BENCHMARKS.md ("Thread pools"), which read a real-image folder instead of a fixed batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

SETTINGS = {"default": (0, 0), "intra 1, inter 2": (1, 2)}  # (intra-op, inter-op); 0: TensorFlow's count
POLICIES = ("float32", "mixed_bfloat16")


def child(model: str, batch: int, threads: tuple[int, int], rounds: int) -> dict[str, float]:
    """Images per second of each of `POLICIES` under `threads`, in this process."""
    import tensorflow as tf

    from experiments.matmul_grad_step import alternating_rounds
    from illustration_gan import config as config_lib
    from illustration_gan import training
    from illustration_gan.training import precision

    precision.set_threads(threads)
    real = tf.random.uniform((batch, 64, 64, 3), -1, 1, seed=0)
    variants = []
    for policy in POLICIES:
        config = config_lib.resolve(model, {"image_size": 64, "batch_size": batch, "precision": policy})
        variants.append((training.GANTrainer(config, tf.distribute.get_strategy()),
                         iter(tf.data.Dataset.from_tensors(real).repeat())))
    return dict(zip(POLICIES, alternating_rounds(variants, batch, rounds)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fast")
    parser.add_argument("--batch_sizes", default="8,64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", default="", help="INTRA,INTER: time in this process (what the parent runs)")
    args = parser.parse_args()
    if args.child:
        threads = tuple(int(n) for n in args.child.split(","))
        print(json.dumps(child(args.model, int(args.batch_sizes), threads, 3)), flush=True)
        return 0
    rates = {}  # (batch, setting, policy) -> [images/s per round]
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        for round_ in range(args.rounds):
            for label, threads in SETTINGS.items():
                done = subprocess.run([sys.executable, "-m", "experiments.threads", "--model", args.model,
                                       "--batch_sizes", str(batch), "--child", "%d,%d" % threads],
                                      capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"batch {batch}, threads {label}: {done.stderr.strip()[-300:]}")
                measured = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"round {round_ + 1}, batch {batch}, threads {label}: "
                      + ", ".join(f"{p} {r:.1f}" for p, r in measured.items()), flush=True)
                for policy, rate in measured.items():
                    rates.setdefault((batch, label, policy), []).append(rate)
    print("| batch | precision | threads | images/s, median of rounds | rounds |")
    print("| --- | --- | --- | --- | --- |")
    for (batch, label, policy), values in rates.items():
        print(f"| {batch} | {policy} | {label} | {statistics.median(values):.1f} | "
              f"{', '.join(f'{v:.0f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
