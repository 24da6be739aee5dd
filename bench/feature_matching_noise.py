"""How much of the feature-matching term is sampling noise at a run's batch size?

Restores G and D from a run's newest checkpoint and, over --pairs draws, scores D's last
hidden features (training-mode batch norm, no augmentation) on a batch of real faces
against another batch of real faces and against a batch of fakes, each of the run's
batch size. The squared gap of the batch means (Salimans et al. 2016,
losses.feature_matching_loss) between two real batches is pure noise. The last row is
what that noise would be if a batch's features were independent samples (each batch's
summed sample variance / n): D's training-mode batch norm makes them depend on each
other, so subtracting it would not leave an unbiased term.

    python bench/feature_matching_noise.py RUN_DIR [--pairs 200] [--faces DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from illustration_gan import data, losses, run_folder  # noqa: E402
from illustration_gan.networks import build_networks  # noqa: E402
from sampling_modes import SHARED  # noqa: E402  (bench/ is on sys.path when run as a script)


def independent_noise(features):
    """tr(sample covariance) / n: the noise of a batch mean of n independent samples."""
    return float(tf.reduce_sum(tf.math.reduce_variance(features, axis=0))) / (len(features) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--faces", default=str(SHARED / "anime_faces"))
    args = parser.parse_args()

    config = run_folder.read_config(args.run_dir)
    networks = build_networks(config.model)
    checkpoint = tf.train.latest_checkpoint(str(Path(args.run_dir) / "checkpoints"))
    if checkpoint is None:
        sys.exit(f"{args.run_dir} has no checkpoint yet")
    tf.train.Checkpoint(generator=networks.generator, discriminator=networks.discriminator).restore(
        checkpoint
    ).expect_partial()
    batch = config.training.batch_size
    if batch < 2:
        sys.exit("a batch of one has no batch statistics to compare")
    reals = np.concatenate(list(data.image_batches_uint8(args.faces, config.model.image_size, 256, limit=4000)))
    reals = reals.astype(np.float32) / 127.5 - 1.0
    rng = np.random.default_rng(0)

    def features(images):
        return networks.discriminator(images, training=True, return_features=True)[1]

    rows = {"real vs real (noise)": [], "real vs fake": [], "the noise if features were independent": []}
    for i in range(args.pairs):
        real_a, real_b = (features(reals[rng.choice(len(reals), batch, replace=False)]) for _ in range(2))
        fake = features(networks.generator(tf.random.normal([batch, config.model.z_dim], seed=i), training=True))
        rows["real vs real (noise)"].append(float(losses.feature_matching_loss(real_a, real_b)))
        rows["real vs fake"].append(float(losses.feature_matching_loss(real_a, fake)))
        rows["the noise if features were independent"].append(independent_noise(real_a) + independent_noise(real_b))
    print(f"| {Path(args.run_dir).name} ({Path(checkpoint).name}), batch {batch} | feature matching term, mean over {args.pairs} pairs | sd of the mean |")
    print("| --- | --- | --- |")
    for name, values in rows.items():
        print(f"| {name} | {np.mean(values):.1f} | {np.std(values) / np.sqrt(len(values)):.1f} |")


if __name__ == "__main__":
    main()
