"""Dense against convolutional GANs at the same minutes, paired by seed: the cartoon-faces source's
observations as the table's columns (../shared/sources/dense-vs-conv-cartoon-faces.txt).

  python -m experiments.dense_vs_conv --minutes 180 --seeds 0,1,2 --conv dcgan
  python -m experiments.dense_vs_conv --score_only --seeds 0,1,2     # the table of runs already trained

The source (a blog post; its notebook is not available) reports for dense against convolutional
GANs on anime faces: dense trains faster per epoch but needs more epochs for good faces, draws
more pixelated faces and collapses more often; after a collapse, training restarts from the last
checkpoint that had not collapsed. Per seed, `--model dense` trains pinned to core 0 and `--conv`
pinned to core 1 for the same minutes on the shared faces at 64x64 (`paired_budget.train`),
keeping every checkpoint. Each run is then read from its per-epoch grids (fakes_NNNNNN.png, 64
faces from one fixed z) against 64 real faces:

- s/epoch: mean seconds per epoch (stats.jsonl);
- faces at epoch: the first epoch whose grid has at least half the real faces' share of faces
  found by the anime face detector (lbpcascade_animeface with nagadomi's settings, as
  data_tools/face_cropping.py runs it, on each face upscaled to 128 px);
- pixelation: mean squared difference of neighbouring pixels of the last grid's faces over the
  real faces' (1 = as smooth as the data);
- collapses: times a grid's diversity (mean distance between its faces over the real faces')
  falls below COLLAPSE after having been above it;
- last good epoch: the epoch before the first collapse, whose checkpoint a restart would take.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np

from experiments.common import grid_tiles
from experiments.paired_budget import FACES, ROOT, train
from illustration_gan import run_folder

CASCADE = FACES.parent / "lbpcascade_animeface.xml"
COLLAPSE = 0.5  # diversity under half the data's: most faces of the grid alike


def faces_found(tiles: np.ndarray, cascade: cv2.CascadeClassifier) -> float:
    """Share of RGB tiles in which the anime face detector finds a face."""
    found = 0
    for tile in tiles:
        gray = cv2.cvtColor(cv2.resize(tile, (128, 128), interpolation=cv2.INTER_CUBIC), cv2.COLOR_RGB2GRAY)
        boxes = cascade.detectMultiScale(cv2.equalizeHist(gray), scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        found += len(boxes) > 0
    return found / len(tiles)


def diversity(tiles: np.ndarray) -> float:
    """Mean Euclidean distance between two different tiles, pixels in [0, 1]."""
    flat = tiles.reshape(len(tiles), -1).astype(np.float64) / 255
    squared = np.maximum((flat**2).sum(1)[:, None] + (flat**2).sum(1)[None, :] - 2 * flat @ flat.T, 0)
    n = len(tiles)
    return float(np.sqrt(squared).sum() / (n * (n - 1)))


def roughness(tiles: np.ndarray) -> float:
    """Mean squared difference of horizontally and vertically neighbouring pixels, in [0, 1]."""
    x = tiles.astype(np.float64) / 255
    return float((np.diff(x, axis=1) ** 2).mean() + (np.diff(x, axis=2) ** 2).mean())


def measure(tiles: np.ndarray, cascade) -> dict:
    found = faces_found(tiles, cascade) if cascade is not None else float("nan")
    return {"faces": found, "diversity": diversity(tiles), "roughness": roughness(tiles)}


def real_reference(folder: str, cascade, size: int = 64, count: int = 64) -> dict:
    """The measures of `count` real faces (sorted names), area-resized to size x size."""
    names = sorted(p for p in glob.glob(os.path.join(folder, "*")) if p.lower().endswith((".jpg", ".jpeg", ".png")))
    if len(names) < 2:
        sys.exit(f"{folder}: fewer than 2 images to compare with")
    tiles = np.stack([cv2.resize(cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB), (size, size),
                                 interpolation=cv2.INTER_AREA) for p in names[:count]])
    return measure(tiles, cascade)


def score_run(run_dir: str, reference: dict, cascade) -> dict:
    """The source's observations for one run folder, read from its grids and stats.jsonl."""
    grids = sorted(glob.glob(os.path.join(run_dir, "fakes_*.png")))
    if not grids:
        sys.exit(f"{run_dir}: no fakes_*.png grids")
    size = run_folder.read_config(run_dir).model.image_size
    per_epoch = []
    for path in grids:
        epoch = int(re.search(r"fakes_(\d+)\.png$", path).group(1))
        grid = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        per_epoch.append((epoch, measure(grid_tiles(grid, size), cascade)))
    stats = run_folder.read_jsonl(os.path.join(run_dir, run_folder.STATS_FILE))
    faces_at = next((epoch for epoch, m in per_epoch if m["faces"] >= 0.5 * reference["faces"] > 0), None)
    collapses, last_good, was_diverse = 0, None, False
    for epoch, m in per_epoch:
        collapsed = m["diversity"] < COLLAPSE * reference["diversity"]
        if collapsed and was_diverse:
            collapses += 1
            if collapses == 1:
                last_good = previous
        was_diverse, previous = not collapsed, epoch
    return {
        "epochs": per_epoch[-1][0],
        "seconds_per_epoch": float(np.mean([r["epoch_seconds"] for r in stats])) if stats else float("nan"),
        "faces_at_epoch": faces_at,
        "faces_last": per_epoch[-1][1]["faces"],
        "pixelation": per_epoch[-1][1]["roughness"] / reference["roughness"],
        "collapses": collapses,
        "last_good_epoch": last_good,
    }


def table_row(preset: str, seed: int, s: dict) -> str:
    shown = lambda v: "not reached" if v is None else str(v)  # noqa: E731
    return (f"| {preset} | {seed} | {s['epochs']} | {s['seconds_per_epoch']:.1f} | {shown(s['faces_at_epoch'])} | "
            f"{s['faces_last']:.2f} | {s['pixelation']:.2f} | {s['collapses']} | "
            f"{'-' if s['last_good_epoch'] is None else s['last_good_epoch']} |")


HEADER = ("| preset | seed | epochs | s/epoch | faces at epoch | faces found, last | pixelation | collapses | "
          "last good epoch |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=180)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--conv", default="dcgan", help="the convolutional preset (core 1)")
    parser.add_argument("--faces", default=str(FACES), help="real faces the grids are compared with")
    parser.add_argument("--cascade", default=str(CASCADE), help="lbpcascade_animeface.xml")
    parser.add_argument("--run_root", default=str(ROOT / "runs" / "dense_vs_conv"))
    parser.add_argument("--score_only", action="store_true", help="score the runs already in --run_root")
    args, common = parser.parse_known_args()
    cascade = cv2.CascadeClassifier(args.cascade)
    if cascade.empty():
        sys.exit(f"{args.cascade}: not a cascade OpenCV can read")
    root = Path(args.run_root)
    root.mkdir(parents=True, exist_ok=True)
    presets = {"dense": 0, args.conv: 1}
    seeds = [int(s) for s in args.seeds.split(",")]
    if not args.score_only:
        for seed in seeds:
            processes = [train(core, root / f"seed{seed}-{preset}", args.minutes, seed,
                               ["--model", preset, "--keep_checkpoints", "100000", *common])
                         for preset, core in presets.items()]
            if any(p.wait() != 0 for p in processes):
                print(f"a training run of seed {seed} failed; see {root}/*.log", file=sys.stderr)
                return 1
    reference = real_reference(args.faces, cascade)
    print(f"real faces: {json.dumps(reference)}")
    print(HEADER)
    scores = {preset: [] for preset in presets}
    for seed in seeds:
        for preset in presets:
            s = score_run(str(root / f"seed{seed}-{preset}"), reference, cascade)
            scores[preset].append(s)
            print(table_row(preset, seed, s), flush=True)
    for preset, runs in scores.items():
        print(f"{preset}: mean s/epoch {np.mean([s['seconds_per_epoch'] for s in runs]):.1f}, "
              f"collapses per run {np.mean([s['collapses'] for s in runs]):.2f}, "
              f"pixelation {np.mean([s['pixelation'] for s in runs]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
