"""How to sample a finished run: the live or the EMA generator, and which batch-norm statistics.

The EMA generator averages the trainable weights but copies the live generator's
batch-norm moving statistics, which belong to other weights. This scores, on the
same z, four ways of sampling a run's last checkpoint:

- live generator, inference-mode batch norm (moving statistics);
- EMA generator as saved in generator.keras (copied statistics);
- EMA generator in training-mode batch norm (statistics of each sampled batch of 100);
- EMA generator with recalibrated statistics (200 batches of 64 in training mode first).

With --latent_scales 0.8,1.5 it scores the EMA generator on z scaled by each factor
instead: below 1 the truncation trick (fidelity for variety), above 1 the reverse.

    python -m experiments.sampling_modes RUN_DIR [--num_samples 2000] [--latent_scales 0.8,1.5] [--faces DIR] [--weights FILE]
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from experiments.common import run_arguments, sampler, score_and_tabulate
from illustration_gan import generate, metrics, run_folder
from illustration_gan.networks import build_networks


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
    command = f"python -m experiments.sampling_modes {args.run_dir} --num_samples {args.num_samples}{scales}"
    score_and_tabulate("sampling", modes, real, extractor, args.num_samples, command)


if __name__ == "__main__":
    main()
