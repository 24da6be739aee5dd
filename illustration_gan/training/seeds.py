"""The stateless seeds of a step's random draws: one salt per draw, so draws are independent of
one another and a resumed run draws exactly what an uninterrupted one would (seed, salt,
replica, step)."""

from __future__ import annotations

import tensorflow as tf

Z, GP, REGIME, AUGMENT_REAL, AUGMENT_FAKE, FRESH_G_Z, ZPRED, BOOST_D, SECOND_G = 1, 2, 3, 5, 6, 7, 8, 9, 10
AUGMENT_TRANSFORMS = 11  # augment.py: the first of one salt per transform
FIXED_Z = (20160101, 7)  # the seed of the per-epoch sample grid's z


def of_step(run_seed: int, salt: int, replica, step) -> tf.Tensor:
    """The [2] int64 seed of one draw of one step (and replica)."""
    return tf.stack([tf.cast(run_seed * 1_000_003 + salt * 1009 + replica, tf.int64), step])
