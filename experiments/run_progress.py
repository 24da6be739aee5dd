"""One run's fixed-z sample grids at chosen epochs, side by side, captioned with updates, images and minutes.

The run folder's progress.gif shows every epoch in turn; this puts a few of them in one
still picture for a document, each captioned from stats.jsonl (minutes as `--max_minutes`
counts them, across resumes):

    python -m experiments.run_progress RUN_DIR --epochs 1,3,5,9 [--tiles 16] [--out RUN_DIR/progress.jpg]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from experiments.common import grid_tiles, new_output, read_run, training_minutes
from illustration_gan import run_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--epochs", required=True, help="comma list of epochs whose fakes_NNNNNN.png to show")
    parser.add_argument("--tiles", type=int, default=16, help="samples per epoch (a square number)")
    parser.add_argument("--out", default="", help="default RUN_DIR/progress.jpg; never overwritten")
    args = parser.parse_args()
    import cv2

    out = new_output(args.run_dir, args.out, "progress.jpg", "--out")
    config, records = read_run(args.run_dir)
    minutes = dict(zip((r["epoch"] for r in records), training_minutes(records)))
    by_epoch = {r["epoch"]: r for r in records}
    side = int(round(args.tiles ** 0.5))
    panels = []
    for epoch in (int(e) for e in args.epochs.split(",") if e):
        path = os.path.join(args.run_dir, f"fakes_{epoch:06d}.png")
        if epoch not in by_epoch or not os.path.exists(path):
            sys.exit(f"{args.run_dir} has no grid or stats record for epoch {epoch}")
        tiles = grid_tiles(cv2.imread(path), config.model.image_size)[: side * side]
        panel = run_folder.image_grid(tiles, columns=side)
        step = by_epoch[epoch]["step"]
        caption = [f"epoch {epoch}, {minutes[epoch]:.0f} min",
                   f"{step:,} updates, {step * config.training.batch_size:,} images"]
        band = np.full((44, panel.shape[1], 3), 255, np.uint8)
        for i, line in enumerate(caption):
            cv2.putText(band, line, (4, 17 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        panels.append(np.concatenate([band, panel], axis=0))
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    picture = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
    cv2.imwrite(out, picture, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {out} ({picture.shape[1]}x{picture.shape[0]})")


if __name__ == "__main__":
    main()
