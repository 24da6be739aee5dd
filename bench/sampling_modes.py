"""How to sample a finished run: the live or the EMA generator, and which batch-norm statistics.

The EMA generator averages the trainable weights but copies the live generator's
batch-norm moving statistics (training_loop._update_ema), which belong to other
weights. This scores, on the same z, four ways of sampling a run's last checkpoint:

- live generator, inference-mode batch norm (moving statistics);
- EMA generator as saved in generator.keras (copied statistics);
- EMA generator in training-mode batch norm (statistics of each sampled batch of 100);
- EMA generator with recalibrated statistics (200 batches of 64 in training mode first).

With --latent_scales 0.8,1.5 it scores the EMA generator on z scaled by each factor
instead: below 1 the truncation trick (fidelity for variety), above 1 the reverse.

    python bench/sampling_modes.py RUN_DIR [--num_samples 2000] [--latent_scales 0.8,1.5] [--faces DIR] [--weights FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from illustration_gan import data, generate, metrics, run_folder  # noqa: E402
from illustration_gan.networks import build_networks  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def run_arguments(doc: str) -> argparse.ArgumentParser:
    """RUN_DIR and where the samples, the real faces and the FID weights come from."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--num_samples", type=int, default=2000)
    parser.add_argument("--faces", default=str(SHARED / "anime_faces"))
    parser.add_argument("--weights", default=str(SHARED / "fid_inception_v3_2015-12-05.npz"))
    return parser


def sampler(generator, training: bool, latent_scale: float = 1.0):
    forward = tf.function(lambda z: generator(z, training=training))

    def sample(n: int, seed: int):
        return data.to_uint8(forward(latent_scale * generator.sample_latents(n, tf.constant([seed, 0], tf.int64))))

    return sample


def _all_layers(layer):
    for child in getattr(layer, "layers", []):
        yield child
        yield from _all_layers(child)


def recalibrate_batch_norm(generator, batches: int = 200, batch_size: int = 64):
    for layer in _all_layers(generator):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.99  # 200 batches: the initial statistics' weight falls to 0.99^200 = 13%
    for i in range(batches):
        generator(generator.sample_latents(batch_size, tf.constant([10_000 + i, 1], tf.int64)), training=True)
    return generator


def main() -> None:
    parser = run_arguments(__doc__)
    parser.add_argument("--latent_scales", default="", help="score the EMA generator on z times each of these instead")
    args = parser.parse_args()

    extractor = metrics.FeatureExtractor(args.weights)
    ema = generate.load_sampler(args.run_dir).generator
    config = run_folder.read_config(args.run_dir)
    real = metrics.real_features(args.faces, config.model.image_size, 5000, extractor, None)

    if args.latent_scales:
        scales = [float(s) for s in args.latent_scales.split(",")]
        modes = [(f"EMA generator, z x {scale}", lambda scale=scale: sampler(ema, False, scale)) for scale in scales]
    else:
        live = build_networks(config.model).generator
        checkpoint = tf.train.latest_checkpoint(os.path.join(args.run_dir, "checkpoints"))
        tf.train.Checkpoint(generator=live).restore(checkpoint).expect_partial()
        modes = [
            ("live generator, moving statistics", lambda: sampler(live, False)),
            ("EMA generator.keras, copied statistics", lambda: sampler(ema, False)),
            ("EMA, training-mode batch norm (batches of 100)", lambda: sampler(ema, True)),
            ("EMA, recalibrated statistics", lambda: sampler(recalibrate_batch_norm(ema), False)),
        ]
    scales = f" --latent_scales {args.latent_scales}" if args.latent_scales else ""
    command = f"python bench/sampling_modes.py {args.run_dir} --num_samples {args.num_samples}{scales}"
    score_and_tabulate("sampling", modes, real, extractor, args.num_samples, command)


def score_and_tabulate(column: str, makers, real, extractor, num_samples: int, command: str) -> None:
    """Scores each (name, make) on the same z, where make() returns a sampler; prints a markdown table."""
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


if __name__ == "__main__":
    main()
