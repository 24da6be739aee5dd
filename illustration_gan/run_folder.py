"""What a run leaves behind, after stylegan2-ada's run folders.

runs/00003-faces-illustration/
  training_options.json   resolved config, versions, dataset size, skipped files
  stats.jsonl             one JSON line per epoch (appended on resume)
  log.txt                 the console log
  fakes_000001.png ...    a grid per epoch from one fixed z
  losses.png              the loss curves, redrawn each epoch
  progress.gif            the grids as an animation (written at the end)
  checkpoints/            tf.train.Checkpoint files (last few kept)
  generator.keras         the newest generator, for `--TYPE generate`
  tensorboard/            TensorBoard events (losses, sample grids)
"""

from __future__ import annotations

import glob
import json
import math
import os
import re

import numpy as np

from illustration_gan import UserError

RUN_NAME = re.compile(r"^(\d{5})-")
OPTIONS_FILE = "training_options.json"
STATS_FILE = "stats.jsonl"
GENERATOR_FILE = "generator.keras"


def new_run_dir(run_root: str, dataset: str, model: str) -> str:
    """Creates runs/NNNNN-<dataset>-<model> with the next free number."""
    os.makedirs(run_root, exist_ok=True)
    numbers = [int(m.group(1)) for name in os.listdir(run_root) if (m := RUN_NAME.match(name))]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dataset}-{model}")
    number = max(numbers, default=-1) + 1
    while True:  # another process may take a number between listdir and mkdir
        path = os.path.join(run_root, f"{number:05d}-{slug}")
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            number += 1


def latest_run_dir(run_root: str) -> str:
    """The highest-numbered run that has written its options."""
    if os.path.isdir(run_root):
        runs = sorted(
            (name for name in os.listdir(run_root) if RUN_NAME.match(name)),
            key=lambda n: int(RUN_NAME.match(n).group(1)),
        )
        for name in reversed(runs):
            path = os.path.join(run_root, name)
            if os.path.exists(os.path.join(path, OPTIONS_FILE)):
                return path
    raise UserError(f"no training run found in {run_root}/; train one first or pass --run_dir")


def resolve_run_dir(run_dir: str, run_root: str) -> str:
    """`latest`, '' or a path -> an existing run folder."""
    if run_dir in ("", "latest"):
        return latest_run_dir(run_root)
    if not os.path.exists(os.path.join(run_dir, OPTIONS_FILE)):
        raise UserError(f"{run_dir} is not a run folder (no {OPTIONS_FILE})")
    return run_dir


def training_options(config, source, replicas: int) -> dict:
    """The contents of training_options.json: enough to explain and rebuild the run."""
    import sys

    import keras
    import tensorflow as tf

    import illustration_gan

    return {
        "config": config.to_json(),
        "command": " ".join(sys.argv),
        "dataset": {
            "path": source.path,
            "builtin_toy_faces": not config.path,
            "kind": source.kind,
            "num_images": source.num_images,
            "skipped_files": len(source.skipped),
            "skipped": list(source.skipped[:100]),
        },
        "replicas": replicas,
        "versions": {
            "illustration_gan": illustration_gan.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
    }


def read_config(run_dir: str):
    """The Config a run was trained with, from its training_options.json."""
    from illustration_gan.config import Config

    path = os.path.join(run_dir, OPTIONS_FILE)
    if not os.path.exists(path):
        raise UserError(f"cannot find {OPTIONS_FILE} in {run_dir}")
    return Config.from_json(read_json(path)["config"])


def dataset_path(run_dir: str) -> str:
    """The folder (or shards) a run trained on, as recorded in its options."""
    options = read_json(os.path.join(run_dir, OPTIONS_FILE))
    return options.get("dataset", {}).get("path") or options["config"].get("path", "")


def write_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def append_jsonl(path: str, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def truncate_stats(path: str, last_epoch: int) -> None:
    """Drops lines after `last_epoch`: epochs finished after the checkpoint we resume from."""
    kept = [r for r in read_jsonl(path) if r.get("epoch", 0) <= last_epoch]
    with open(path, "w") as f:
        for record in kept:
            f.write(json.dumps(record, sort_keys=True) + "\n")


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 images (N, H, W, 3) -> one uint8 grid image, white padding between tiles."""
    n, h, w, c = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = image
    return grid


def save_png(path: str, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path)


def plot_losses(stats: list[dict], path: str) -> None:
    """Loss and D-output curves per epoch from stats.jsonl records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in stats]
    fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key in ("d_loss", "g_loss", "zpred_loss"):
        if any(key in r for r in stats):
            ax_loss.plot(epochs, [r.get(key, np.nan) for r in stats], marker=".", label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("losses")
    ax_loss.legend()
    for key, label in (("d_real", "D(x)"), ("d_fake", "D(G(z))")):
        ax_d.plot(epochs, [r.get(key, np.nan) for r in stats], marker=".", label=label)
    ax_d.set_xlabel("epoch")
    ax_d.set_title("discriminator outputs (mean)")
    ax_d.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_progress_gif(run_dir: str, path: str | None = None, max_frames: int = 100) -> str | None:
    """Animates the per-epoch grids (fakes_*.png) into progress.gif."""
    from PIL import Image

    frames = sorted(glob.glob(os.path.join(run_dir, "fakes_*.png")))
    if not frames:
        return None
    if len(frames) > max_frames:
        frames = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, max_frames)]
    images = [Image.open(f).convert("RGB") for f in frames]
    path = path or os.path.join(run_dir, "progress.gif")
    durations = [300] * (len(images) - 1) + [1500]  # linger on the last grid
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path
