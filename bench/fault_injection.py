"""Kill training at random moments and check that resuming loses nothing (issue 25).

  python bench/fault_injection.py --trials 20

An uninterrupted reference run trains a tiny DCGAN on 32 noise images (4 steps per
epoch) for --epochs epochs. Each trial starts the same run in its own folder, sends
SIGKILL after a random delay (from one second after the start to just before the
reference run's end, so kills land during start-up, steps, the end-of-epoch writes and
the checkpoint), then runs
`--resume` until it finishes, killing at most --kills_per_trial times in all. After each
trial it checks: stats.jsonl holds epochs 1..N once each with the reference's step and
update counts, every fakes_*.png is there, generator.keras loads, and the checkpoint's
step equals the reference's. Prints one row per trial and the count of failures (exit 1
if any).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "dcgan", "--image_size", "32", "--g_width", "4", "--d_width", "4", "--z_dim", "8",
        "--batch_size", "8"]


def make_faces(folder: Path, count: int = 32) -> None:
    import cv2
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))


def command(faces: Path, run_dir: Path, epochs: int, resume: bool) -> list[str]:
    where = ["--resume", str(run_dir)] if resume else ["--run_dir", str(run_dir), "--path", str(faces), *TINY]
    return [sys.executable, str(ROOT / "train.py"), "--TYPE", "train", "--epochs", str(epochs), *where]


def run(args: list[str], kill_after: float | None) -> tuple[int, float]:
    started = time.time()
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        process.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    return process.returncode, time.time() - started


def summary(run_dir: Path) -> dict:
    import json

    import keras
    import tensorflow as tf

    import illustration_gan.networks  # noqa: F401  (registers the generator classes)

    lines = (run_dir / "stats.jsonl").read_text().splitlines() if (run_dir / "stats.jsonl").exists() else []
    records = [json.loads(line) for line in lines if line.strip()]
    checkpoint = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    keras.saving.load_model(run_dir / "generator.keras")  # raises if it is not whole
    return {
        "epochs": [r["epoch"] for r in records],
        "steps": [r["step"] for r in records],
        "updates": [(r["d_updates"], r["g_updates"]) for r in records],
        "grids": sorted(p.name for p in run_dir.glob("fakes_*.png")),
        "step": int(tf.train.load_variable(checkpoint, "step/.ATTRIBUTES/VARIABLE_VALUE")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--kills_per_trial", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="fault-injection-"))
    try:
        make_faces(work / "faces")
        code, full = run(command(work / "faces", work / "reference", args.epochs, False), None)
        assert code == 0, "the reference run failed"
        reference = summary(work / "reference")
        print(f"reference: {args.epochs} epochs in {full:.1f} s, step {reference['step']}")
        failures = 0
        for trial in range(args.trials):
            run_dir = work / f"trial-{trial:02d}"
            kills, resume, codes = [], False, []
            while True:
                # The first run is always killed (before the reference's end); a resumed one may finish first.
                kill = rng.uniform(1.0, full * 0.95) if len(kills) < args.kills_per_trial else None
                code, seconds = run(command(work / "faces", run_dir, args.epochs, resume), kill)
                codes.append(code)
                if code == 0:
                    break
                kills.append(round(seconds, 1))
                resume = (run_dir / "training_options.json").exists()
                if not resume:
                    shutil.rmtree(run_dir, ignore_errors=True)  # killed before the run folder was recorded
            try:
                got = summary(run_dir)
                problems = [k for k in reference if got[k] != reference[k]]
            except Exception as error:  # noqa: BLE001 - any failure to read the run is a failed trial
                problems = [f"{type(error).__name__}: {error}"]
            failures += bool(problems)
            print(f"trial {trial:2d}: killed at {kills} s, exit codes {codes}: "
                  f"{'ok' if not problems else 'FAILED ' + ', '.join(problems)}", flush=True)
        print(f"{args.trials - failures} passed, {failures} failed")
        return 1 if failures else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
