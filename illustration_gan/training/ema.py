"""The generator's exponential moving average, for samples and `generator.keras`.

As stylegan2-ada (NVlabs/stylegan2-ada training/training_loop.py, `ema_kimg` and
`ema_rampup`): the average's half-life is `ema_kimg` thousand images, but at most
5% of the images seen so far, so early weights are forgotten quickly. Batch-norm
statistics are copied from the live generator, not averaged.
"""

from __future__ import annotations

import tensorflow as tf

EMA_RAMPUP = 0.05  # the half-life is at most this share of the images seen so far


class GeneratorEMA:
    """Holds `generator`, a copy of the live generator whose weights trail it."""

    def __init__(self, generator, live, kimg: float, batch_size: int):
        self.generator, self.live = generator, live
        self.kimg, self.batch_size = kimg, batch_size
        for ema, weight in zip(generator.weights, live.weights):
            ema.assign(weight)

    def beta(self, images_seen):
        """Per-update decay for the half-life in force after `images_seen` images."""
        half_life = tf.minimum(self.kimg * 1000.0, tf.cast(images_seen, tf.float32) * EMA_RAMPUP)
        return tf.pow(0.5, self.batch_size / tf.maximum(half_life, 1e-8))

    def update(self, steps_done):
        """Moves the average towards the live weights after update number `steps_done + 1`."""
        beta = self.beta((tf.cast(steps_done, tf.float32) + 1.0) * self.batch_size)
        for ema, live in zip(self.generator.trainable_variables, self.live.trainable_variables):
            ema.assign(live + (ema - live) * tf.cast(beta, ema.dtype))
        for ema, live in zip(self.generator.non_trainable_variables, self.live.non_trainable_variables):
            ema.assign(live)
