"""Mode coverage of IllustrationGAN on the toy faces, with and without its anti-collapse parts.

IllustrationGAN claims that minibatch discrimination and the z-predictor keep the
generator from collapsing. This trains the `illustration` preset on the built-in toy
faces (32x32, 48 attribute combinations in equal shares) in two configurations,

    full:  the preset (minibatch discrimination B=100, C=5, and the z-predictor)
    plain: --minibatch_kernels 0 --z_predictor=false

each for --minutes of wall-clock time (or for a fixed --epochs, the same images for
both), then classifies --num_samples faces of each run's generator.keras with the
toy-face attribute classifier (`illustration_gan.metrics.coverage`) and prints a markdown
table: modes covered of 48, coverage, modes with >= 10% of their expected share, and
KL(generated || uniform) in nats (stacked-MNIST protocol; 0 is perfect, log 48 = 3.87
is one face), and the rarest attribute value (a hair colour, eye colour or hair style) with
its share of the samples over its share of the toy faces. A row for the toy faces themselves shows the metric's floor.

    python bench/mode_coverage.py [--minutes 8] [--seeds 0] [--out runs/mode_coverage/DATE]
    python bench/mode_coverage.py --epochs 20                  # the same number of images for both
    python bench/mode_coverage.py --run_dirs runs/a,runs/b     # only evaluate existing runs

Each evaluation is also appended to the run's metric-coverage.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONFIGURATIONS = {
    "full": [],
    "plain": ["--minibatch_kernels", "0", "--z_predictor=false"],
}
METRIC_FILE = "metric-coverage.jsonl"


def train(name: str, extra: list[str], seed: int, args, out: Path) -> Path:
    from illustration_gan import run_folder

    run_root = out / f"{name}-seed{seed}"
    run_root.mkdir(parents=True, exist_ok=True)
    if args.epochs:
        budget = ["--epochs", str(args.epochs)]
    else:
        budget = ["--max_minutes", f"{args.minutes:g}", "--epochs", "1000"]
    command = [sys.executable, "train.py", "--TYPE", "train", "--model", "illustration", *budget,
               "--run_root", str(run_root), "--seed", str(seed), *extra]
    log_path = run_root / "train.log"
    print(f"[{time.strftime('%H:%M:%S')}] training {name} (seed {seed}): {' '.join(command[1:])}", flush=True)
    with open(log_path, "w") as log:
        code = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        sys.stdout.write(log_path.read_text()[-3000:])
        sys.exit(f"training {name} failed with exit code {code}; log: {log_path}")
    return Path(run_folder.latest_run_dir(str(run_root)))


def describe(options: dict) -> str:
    model = options["config"]["model"]
    kernels = model.get("minibatch_kernels")
    parts = [f"minibatch discrimination B={kernels}" if kernels else "no minibatch discrimination",
             "z-predictor" if model.get("z_predictor") else "no z-predictor"]
    return f"{options['config'].get('preset', '?')}: " + ", ".join(parts)


def load_generator(run_dir: Path, source: str):
    """(sampler, what was loaded, images seen by the loaded generator)."""
    import tensorflow as tf

    from illustration_gan import generate, run_folder

    options = run_folder.read_json(str(run_dir / run_folder.OPTIONS_FILE))
    batch = int(options["config"]["training"]["batch_size"])
    keras_file = run_dir / run_folder.GENERATOR_FILE
    if source == "keras" or (source == "auto" and keras_file.exists()):
        stats_file = run_dir / run_folder.STATS_FILE
        stats = run_folder.read_jsonl(str(stats_file)) if stats_file.exists() else []
        seen = stats[-1]["step"] * batch if stats else None
        epoch = stats[-1]["epoch"] if stats else "?"
        return generate.load_sampler(str(run_dir)), f"generator.keras (epoch {epoch})", seen
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    if latest is None:
        sys.exit(f"{run_dir} has neither {run_folder.GENERATOR_FILE} nor a checkpoint")
    step = int(tf.train.load_variable(latest, "step/.ATTRIBUTES/VARIABLE_VALUE"))
    return generate.load_sampler(checkpoint=latest), os.path.basename(latest), step * batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock training time per run")
    parser.add_argument("--epochs", type=int, default=0, help="train this many epochs instead of --minutes")
    parser.add_argument("--seeds", default="0", help="comma list: one run per configuration and seed")
    parser.add_argument("--configs", default="full,plain", help=f"comma list of {', '.join(CONFIGURATIONS)}")
    parser.add_argument("--out", default="", help="folder for the runs (default runs/mode_coverage/DATE-TIME)")
    parser.add_argument("--run_dirs", default="", help="comma list of existing run folders: evaluate only")
    parser.add_argument("--source", choices=["auto", "keras", "checkpoint"], default="auto",
                        help="auto: generator.keras (last finished epoch), else the newest checkpoint")
    parser.add_argument("--num_samples", type=int, default=4800)
    parser.add_argument("--cache_dir", default=None, help="classifier cache (default ~/.cache/illustration_gan)")
    args = parser.parse_args()

    from illustration_gan import run_folder
    from illustration_gan.metrics import coverage

    rows = []  # (label, seed, run_dir or None)
    if args.run_dirs:
        for run_dir in filter(None, args.run_dirs.split(",")):
            run_dir = Path(run_folder.resolve_run_dir(run_dir, "runs"))
            options = run_folder.read_json(str(run_dir / run_folder.OPTIONS_FILE))
            rows.append((describe(options), options["config"].get("seed", "?"), run_dir))
    else:
        out = Path(args.out or ROOT / "runs" / "mode_coverage" / time.strftime("%Y%m%d-%H%M%S"))
        for seed in [int(s) for s in args.seeds.split(",")]:
            for name in args.configs.split(","):
                run_dir = train(name, CONFIGURATIONS[name], seed, args, out)
                options = run_folder.read_json(str(run_dir / run_folder.OPTIONS_FILE))
                rows.append((describe(options), seed, run_dir))

    classifiers, results = {}, []
    for label, seed, run_dir in rows:
        sampler, loaded, seen = load_generator(run_dir, args.source)
        size = sampler.image_size
        if size not in classifiers:
            classifiers[size] = coverage.load_or_train_classifier(size, args.cache_dir, verbose=True)
        start = time.time()
        scores = coverage.evaluate_coverage(sampler, args.num_samples, seed=0, classifier=classifiers[size])
        record = {"time": time.time(), "run_dir": str(run_dir), "generator": loaded, "images_seen": seen,
                  "eval_seconds": round(time.time() - start, 1), **scores}
        run_folder.append_jsonl(str(run_dir / METRIC_FILE), record)
        results.append((label, seed, record))
        print(f"evaluated {run_dir} ({loaded}, {seen} images seen) in {record['eval_seconds']} s", flush=True)

    # The floor: the toy faces themselves (fresh ones, not the training set) through the same classifier.
    for size, classifier in classifiers.items():

        class ToyFaces:
            image_size = size

            @staticmethod
            def sample_uint8(n, seed=0):
                return coverage.toy_data(n, size, seed=3003 + seed)[0]

        results.append((f"toy faces themselves ({size}x{size})", "-", {"images_seen": None, "generator": "-",
                        **coverage.evaluate_coverage(ToyFaces(), args.num_samples, classifier=classifier)}))

    print()
    print("Command: `" + " ".join(["python", "bench/mode_coverage.py", *sys.argv[1:]]) + "`")
    for size in classifiers:
        accuracy = coverage.classifier_record(size, args.cache_dir).get("heldout_accuracy")
        if accuracy:
            print(f"Attribute classifier at {size}x{size}: held-out accuracy "
                  + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))
    print(f"{args.num_samples} samples per generator; KL = KL(generated || uniform) in nats "
          f"(one face: log 48 = {math.log(48):.2f}; a perfect generator ~{47 / (2 * args.num_samples):.3f} from sampling).")
    print()
    print("| configuration | seed | generator | images seen | modes covered /48 | coverage | modes >=10% /48 | KL "
          "| KL hair / eyes / style | rarest value (share / expected) | confidence |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |")
    for label, seed, r in results:
        seen = f"{r['images_seen']:,}" if r.get("images_seen") else "-"
        print(f"| {label} | {seed} | {r['generator']} | {seen} | {r['modes_covered']} | {r['coverage']:.1%} | "
              f"{r['modes_covered_strict']} | {r['kl_to_uniform']:.3f} | "
              f"{r['kl_hair']:.3f} / {r['kl_eyes']:.3f} / {r['kl_style']:.3f} | {r['rarest_value']} | "
              f"{r['mean_confidence']:.2f} |")
    if not args.run_dirs:
        summary = Path(rows[0][2]).parent.parent / "mode_coverage.json" if rows else None
        if summary:
            summary.write_text(json.dumps([{"configuration": c, "seed": s, **r} for c, s, r in results], indent=2))
            print(f"\nall results: {summary}")


if __name__ == "__main__":
    main()
