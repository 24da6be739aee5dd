"""What the experiments share: where the data lives, scoring ways of sampling a run, training with a hook, research helpers.

These helpers serve the one-off diagnostics in this folder, not the package: reading a
run's saved grids back into tiles, the minutes of training behind each stats record, and
two ways of asking why a run's recall is low.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FACES = SHARED / "anime_faces"
FID_WEIGHTS = SHARED / "fid_inception_v3_2015-12-05.npz"


# ----------------------------------------------------------------------------- scoring ways of sampling a run


def run_arguments(doc: str) -> argparse.ArgumentParser:
    """RUN_DIR and where the samples, the real faces and the FID weights come from."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--num_samples", type=int, default=2000)
    parser.add_argument("--faces", default=str(FACES))
    parser.add_argument("--weights", default=str(FID_WEIGHTS))
    return parser


def sampler(generator, training: bool, latent_scale: float = 1.0):
    """sample(n, seed) -> uint8 images of `generator` on z times `latent_scale`, batch norm in `training` mode."""
    import tensorflow as tf

    from illustration_gan import data

    forward = tf.function(lambda z: generator(z, training=training))

    def sample(n: int, seed: int):
        return data.to_uint8(forward(latent_scale * generator.sample_latents(n, tf.constant([seed, 0], tf.int64))))

    return sample


def score_and_tabulate(column: str, makers, real, extractor, num_samples: int, command: str) -> None:
    """Scores each (name, make) on the same z, where make() returns a sampler; prints a markdown table."""
    from illustration_gan import metrics

    rows = []
    for name, make in makers:
        started = time.time()
        scores = metrics.compute_all(real, metrics.generated_features(make(), num_samples, extractor, seed=0))
        rows.append((name, scores))
        print(f"{name}: {scores}  ({time.time() - started:.0f} s)", flush=True)
    label = metrics.count_label(num_samples)
    print(f"\nCommand: `{command}`")
    print(f"| {column} | fid{label} | kid{label} | precision | recall |\n| --- | --- | --- | --- | --- |")
    for name, s in rows:
        print(f"| {name} | {s['fid' + label]:.1f} | {s['kid' + label]:.4f} | "
              f"{s['precision' + label]:.3f} | {s['recall' + label]:.3f} |")


# ----------------------------------------------------------------------------- training with a hook


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """What `train_with_callback` reads: the run folder, seed, minutes, preset, faces and more train.py flags."""
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--model", default="fast")
    parser.add_argument("--faces", default=str(FACES))
    parser.add_argument("flags", nargs="*", help="more train.py flags, after --")


def train_with_callback(callback, args: argparse.Namespace) -> None:
    """`train.py --TYPE train` on the faces at 64x64 for `args.minutes`, with one more training callback.

    The callback is installed by wrapping `training.train`, which `cli.run_train` calls, so
    it reaches the trainer before the compiled step is first traced (`on_train_begin`).
    """
    from illustration_gan import cli, training

    train = training.train

    def train_with_hook(*positional, callbacks=None, **keywords):
        return train(*positional, callbacks=[*(callbacks or []), callback], **keywords)

    training.train = train_with_hook
    try:
        argv = ["train.py", "--TYPE", "train", "--model", args.model, "--path", args.faces, "--image_size", "64",
                "--epochs", "100000", "--max_minutes", str(args.minutes), "--run_dir", args.run_dir,
                "--seed", str(args.seed), *args.flags]
        print("+", " ".join(argv), flush=True)
        cli.run(argv)
    finally:
        training.train = train


# ----------------------------------------------------------------------------- run folders


def grid_tiles(grid: np.ndarray, tile_size: int, padding: int = 2) -> np.ndarray:
    """The inverse of run_folder.image_grid: a saved grid -> its tiles (N, size, size, 3), blank cells included."""
    step = tile_size + padding
    rows, columns = (grid.shape[0] - padding) // step, (grid.shape[1] - padding) // step
    return np.stack([grid[padding + r * step : padding + r * step + tile_size, padding + c * step : padding + c * step + tile_size]
                     for r in range(rows) for c in range(columns)])


def read_run(run_dir: str):
    """(Config, stats.jsonl records) of a run folder."""
    from illustration_gan import run_folder

    return run_folder.read_config(run_dir), run_folder.read_jsonl(os.path.join(run_dir, run_folder.STATS_FILE))


def new_output(run_dir: str, given: str, default_name: str, flag: str) -> str:
    """`given`, or `default_name` in the run folder; exits with one line if that file exists (never overwritten)."""
    path = given or os.path.join(run_dir, default_name)
    if os.path.exists(path):
        sys.exit(f"{path} exists; move it or name another with {flag}")
    return path


def training_minutes(records: list[dict]) -> list[float]:
    """Wall-clock minutes of training at the end of each stats.jsonl record, as --max_minutes counts them.

    Runs started since 2026-12-07 record it (`training_minutes`). For older runs a record's
    share is the wall time since the record before it, which includes the grid and
    checkpoint writing that epoch_seconds leaves out; after a resume (a gap longer than
    twice the epoch) or for the first record it is the epoch's own seconds.
    """
    if records and "training_minutes" in records[0]:
        return [record["training_minutes"] for record in records]
    minutes, elapsed, previous = [], 0.0, None
    for record in records:
        step = record["epoch_seconds"]
        if previous is not None and 0 < record["wall_time"] - previous <= 2 * step:
            step = record["wall_time"] - previous
        elapsed += step
        previous = record["wall_time"]
        minutes.append(elapsed / 60)
    return minutes


# ----------------------------------------------------------------------------- why is recall low?


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * (a @ b.T), 0)


def _kth_neighbour_distance(features: np.ndarray, k: int, block: int = 1000) -> np.ndarray:
    """Distance of every sample to its k-th nearest other sample of the same set."""
    return np.sqrt(np.concatenate([np.partition(_squared_distances(features[i : i + block], features), k, axis=1)[:, k]
                                   for i in range(0, len(features), block)]))  # column 0 is the sample itself


def manifold_distances(real_f: np.ndarray, fake_f: np.ndarray, k: int = 3) -> dict[str, float]:
    """Medians that explain a low recall: is the generated set bunched, or beside the real one?

    real_radius / fake_radius: each set's k-NN radius (the balls of precision and
    recall); real_to_fake: distance of a real sample to its nearest generated one;
    real_to_real: to its nearest other real one. Bunched samples (mode collapse) show
    as fake_radius well below real_radius; samples as spread as the data but off it
    show as real_to_fake above fake_radius with similar radii.
    """
    real_f, fake_f = np.asarray(real_f, np.float64), np.asarray(fake_f, np.float64)
    nearest_fake = np.concatenate(
        [_squared_distances(real_f[i : i + 1000], fake_f).min(axis=1) for i in range(0, len(real_f), 1000)]
    )
    return {
        "real_radius": float(np.median(_kth_neighbour_distance(real_f, k))),
        "fake_radius": float(np.median(_kth_neighbour_distance(fake_f, k))),
        "real_to_fake": float(np.median(np.sqrt(nearest_fake))),
        "real_to_real": float(np.median(_kth_neighbour_distance(real_f, 1))),
    }


def moment_matched_recall(real_f: np.ndarray, fake_f: np.ndarray, k: int = 3) -> dict[str, float]:
    """Recall after moving the generated features onto the real ones' mean, then also their spread.

    An offset shared by every sample (FID's mean term, `mean_term`) or a per-feature
    scale mismatch can hold recall near zero on its own. If matching the mean, then the
    per-feature standard deviation, raises recall far, the generated set's shared
    statistics are off rather than its variety.
    """
    from illustration_gan import metrics

    real_f, fake_f = np.asarray(real_f, np.float64), np.asarray(fake_f, np.float64)
    mu_real, mu_fake = real_f.mean(axis=0), fake_f.mean(axis=0)
    centred = fake_f - mu_fake
    scaled = centred / np.maximum(fake_f.std(axis=0), 1e-12) * real_f.std(axis=0)
    return {
        "mean_term": float(np.sum((mu_real - mu_fake) ** 2)),
        "recall_mean_matched": metrics.precision_recall(real_f, centred + mu_real, k)[1],
        "recall_moments_matched": metrics.precision_recall(real_f, scaled + mu_real, k)[1],
    }
