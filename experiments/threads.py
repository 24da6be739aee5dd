"""Thread pools against each other for one preset, each timing in its own process, in alternating rounds.

  python -m experiments.threads --model fast --batch_sizes 8,64 --rounds 3

TensorFlow fixes its intra-op and inter-op pools when it starts, so each timing is a child
process: `python -m illustration_gan.training.precision`, what `--precision auto` runs for
every entry of `precision.THREADS` (it times float32 and mixed_bfloat16 in interleaved rounds
and prints both rates). Rounds alternate the entries, so a machine that slows down
slows every entry alike. Prints one row per batch, policy and entry, with the median over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from illustration_gan import config as config_lib
from illustration_gan.training import precision

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "anime_faces"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fast")
    parser.add_argument("--batch_sizes", default="8,64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--path", default=str(FACES))
    args = parser.parse_args()
    rates = {}  # (batch, threads label, policy) -> [images/s per round]
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        config = config_lib.resolve(args.model, {"batch_size": batch, "image_size": 64, "path": args.path,
                                                 "precision": "auto"})
        for round_ in range(args.rounds):
            for label, threads in precision.THREADS.items():
                measured, why = precision.time_in_child(config, args.path, threads)
                if measured is None:
                    raise SystemExit(f"batch {batch}, threads {label}: {why}")
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
