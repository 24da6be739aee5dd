"""Does a run's colour swing from epoch to epoch? The batch-mean colour of its fixed-z grids.

Every epoch a run saves a grid of the same latents (fakes_NNNNNN.png), so a change in the
mean colour of the grid's tiles between epochs is a change that all samples share: the
generator moving as a whole, not drawing other faces. This prints, per window of epochs,
the mean RGB of the grids, its standard deviation across the window's epochs and the mean
absolute change from one epoch to the next, beside the standard deviation of the mean RGB
of random batches of as many real faces (what sampling alone moves a batch mean by), and
plots the three channels per epoch as colour_drift.png in the run folder:

    python -m experiments.colour_drift RUN_DIR [--windows 1-31,32-62] [--faces DIR]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np

from experiments.common import FACES, grid_tiles
from illustration_gan import UserError, data, run_folder


def grid_means(run_dir: str, tile_size: int, count: int) -> dict[int, np.ndarray]:
    """Epoch -> mean RGB over the `count` tiles of that epoch's fixed-z grid (not its blank cells)."""
    means = {}
    for path in glob.glob(os.path.join(run_dir, "fakes_*.png")):
        grid = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        means[int(re.search(r"fakes_(\d+)", path).group(1))] = grid_tiles(grid, tile_size)[:count].mean(axis=(0, 1, 2))
    if not means:
        raise UserError(f"{run_dir} has no per-epoch grids (fakes_*.png)")
    return dict(sorted(means.items()))


def real_batch_means(faces: str, image_size: int, batch: int, draws: int = 200, seed: int = 0) -> np.ndarray:
    """Mean RGB of each of `draws` random batches of `batch` real faces, (draws, 3)."""
    images = np.concatenate(list(data.image_batches_uint8(faces, image_size, 500))).astype(np.float64)
    rng = np.random.default_rng(seed)
    return np.stack([images[rng.choice(len(images), batch, replace=False)].mean(axis=(0, 1, 2)) for _ in range(draws)])


def _rgb(values: np.ndarray) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def plot(means: dict[int, np.ndarray], real_mean: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = list(means)
    values = np.stack(list(means.values()))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for channel, colour in enumerate(("tab:red", "tab:green", "tab:blue")):
        ax.plot(epochs, values[:, channel], color=colour, label="RGB"[channel])
        ax.axhline(real_mean[channel], color=colour, linestyle="--", linewidth=0.8)
    ax.set_title("fixed-z grid per epoch; dashed: the real faces' mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean of the fixed-z grid (0-255)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--windows", default="", help="epoch ranges such as 1-31,32-62 (default: thirds of the run)")
    parser.add_argument("--faces", default=str(FACES))
    args = parser.parse_args()

    config = run_folder.read_config(args.run_dir)
    tiles = config.grid_size
    means = grid_means(args.run_dir, config.model.image_size, tiles)
    epochs = list(means)
    if args.windows:
        windows = [tuple(int(e) for e in w.split("-")) for w in args.windows.split(",")]
    else:
        thirds = np.array_split(np.array(epochs), 3)
        windows = [(int(t[0]), int(t[-1])) for t in thirds if len(t)]
    real = real_batch_means(args.faces, config.model.image_size, tiles)
    print(f"{Path(args.run_dir).name}: {len(epochs)} grids of {tiles} tiles; mean RGB of a random batch of {tiles} "
          f"real faces varies by sd {_rgb(real.std(axis=0))}")
    print("| epochs | mean RGB | sd across epochs | mean abs. change, epoch to epoch |")
    print("| --- | --- | --- | --- |")
    for first, last in windows:
        window = np.stack([m for e, m in means.items() if first <= e <= last])
        change = np.abs(np.diff(window, axis=0)).mean(axis=0) if len(window) > 1 else np.full(3, np.nan)
        print(f"| {first}-{last} | {_rgb(window.mean(axis=0))} | {_rgb(window.std(axis=0))} | {_rgb(change)} |")
    out = os.path.join(args.run_dir, "colour_drift.png")
    plot(means, real.mean(axis=0), out)
    print(f"plot: {out}")


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        sys.exit(f"error: {e}")
