"""Sample quality at a wall-clock budget: python bench/quality_budget.py --minutes 20 [train.py flags]

Trains on the 6,000 shared faces (64x64) for --minutes of wall-clock time with
`train.py --max_minutes`, then evaluates the run's generator.keras with the
project's own evaluation (`train.py --TYPE evaluate`: FID, KID, precision and
recall of --num_samples generated images against up to 5,000 of the faces) and
prints one markdown table row. Extra arguments go to train.py, e.g.

  python bench/quality_budget.py --minutes 20 --model fast
  python bench/quality_budget.py --minutes 20 --model dcgan --batch_size 128   # the PyTorch tutorial's recipe
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from illustration_gan import run_folder

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "anime_faces"
WEIGHTS = ROOT.parent / "shared" / "data" / "fid_inception_v3_2015-12-05.npz"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--num_samples", type=int, default=5000)
    parser.add_argument("--run_root", default=str(ROOT / "runs" / "quality"))
    parser.add_argument("--run_dir", default="", help="evaluate this finished run instead of training one")
    args, train_flags = parser.parse_known_args()
    env = {**os.environ, "ILLUSTRATION_GAN_FID_WEIGHTS": os.environ.get("ILLUSTRATION_GAN_FID_WEIGHTS", str(WEIGHTS))}
    run_dir = args.run_dir
    if not run_dir:
        before = set(os.listdir(args.run_root)) if os.path.isdir(args.run_root) else set()
        command = [sys.executable, "train.py", "--TYPE", "train", "--path", str(FACES), "--image_size", "64",
                   "--epochs", "100000", "--max_minutes", str(args.minutes), "--run_root", args.run_root, *train_flags]
        print("+", " ".join(command), flush=True)
        subprocess.run(command, cwd=ROOT, check=True, env=env)
        (new,) = set(os.listdir(args.run_root)) - before
        run_dir = os.path.join(args.run_root, new)
    command = [sys.executable, "train.py", "--TYPE", "evaluate", "--run_dir", run_dir, "--path", str(FACES),
               "--num_samples", str(args.num_samples), "--num_real", "5000"]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True, env=env, stdout=subprocess.DEVNULL)
    with open(os.path.join(run_dir, "metric-fid.jsonl")) as f:
        record = json.loads(f.readlines()[-1])
    with open(os.path.join(run_dir, "stats.jsonl")) as f:
        stats = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(run_dir, "training_options.json")) as f:
        options = json.load(f)
    # Where the clock stopped: the newest checkpoint's step, at which generator.keras is saved too.
    newest = run_folder.checkpoint_prefixes(os.path.join(run_dir, "checkpoints"))
    step = run_folder.checkpoint_step(newest[0]) if newest else (stats[-1]["step"] if stats else 0)
    images = step * options["config"]["training"]["batch_size"]
    label = next(k for k in record if k.startswith("fid"))[3:]
    print(f"| run | images seen | fid{label} | kid{label} | precision | recall |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {os.path.basename(run_dir)} {' '.join(train_flags)} | {images:,} | {record['fid' + label]:.1f} | "
          f"{record['kid' + label]:.4f} | {record['precision' + label]:.3f} | {record['recall' + label]:.3f} |")


if __name__ == "__main__":
    main()
