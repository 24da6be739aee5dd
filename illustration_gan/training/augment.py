"""Differentiable augmentation of everything the discriminator sees.

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient
GAN Training", mit-han-lab/data-efficient-gans, DiffAugment_tf.py): the same
random colour, translation and cutout transforms are applied to real and fake
images before D, and gradients flow through them to G, so D cannot overfit a
small dataset and G is not taught to produce augmented images.

Adaptive strength (ADA: Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data", NVlabs/stylegan2-ada training_loop.py): transforms
named as adaptive are applied to each image with a probability p that a
controller raises while D is too sure of the reals (the mean sign of its real
logits above a target) and lowers otherwise. Here the controller drives
DiffAugment's transforms rather than ADA's own pipeline.

Images are in [-1, 1], NHWC. Randomness is stateless (a [2] int seed), so a
resumed run augments exactly as an uninterrupted one would.
"""

from __future__ import annotations

import tensorflow as tf

from illustration_gan.config import AUGMENTATIONS as POLICIES
from illustration_gan.training import seeds
# stylegan2-ada lets p move by 1 per 500k images over runs of ~25M; a 20-minute CPU run sees ~0.25M.
ADA_KIMG = 100
ADA_INTERVAL = 256  # images between adjustments (stylegan2-ada: 4 batches of 64)


def parse_policy(policy: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in parts if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}; choose from {POLICIES}")
    return parts


def _uniform(shape, seed, salt, low=0.0, high=1.0):
    return tf.random.stateless_uniform(shape, seed + tf.constant([0, 1], seed.dtype) * salt * 7919, low, high)


def random_color(x, seed):
    """Brightness +U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5), per image."""
    n = tf.shape(x)[0]
    x = x + _uniform([n, 1, 1, 1], seed, 1, -0.5, 0.5)
    gray = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - gray) * _uniform([n, 1, 1, 1], seed, 2, 0.0, 2.0) + gray
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * _uniform([n, 1, 1, 1], seed, 3, 0.5, 1.5) + mean


def random_translation(x, seed, ratio=0.125):
    """Shifts each image by up to `ratio` of its size, filling with zeros (mid-grey)."""
    n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = tf.cast(tf.floor(_uniform([n, 1], seed, 4, 0.0, 1.0) * (2 * sy + 1)), tf.int32)
    dx = tf.cast(tf.floor(_uniform([n, 1], seed, 5, 0.0, 1.0) * (2 * sx + 1)), tf.int32)
    padded = tf.pad(x, [[0, 0], [sy, sy], [sx, sx], [0, 0]])
    rows = tf.range(h)[None, :] + dy  # (n, h) rows of the padded image to take
    cols = tf.range(w)[None, :] + dx
    x = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def random_cutout(x, seed, ratio=0.5):
    """Zeroes one square of `ratio` x the image size at a random place in each image."""
    n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = tf.cast(tf.floor(_uniform([n, 1, 1], seed, 6) * (h + 1 - ch % 2)), tf.int32)
    cx = tf.cast(tf.floor(_uniform([n, 1, 1], seed, 7) * (w + 1 - cw % 2)), tf.int32)
    top, left = cy - ch // 2, cx - cw // 2  # the square may hang over the border, as in the paper
    ys = tf.range(h)[None, :, None]
    xs = tf.range(w)[None, None, :]
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x * tf.cast(tf.logical_not(inside), x.dtype)[..., None]


def diff_augment(x, policy: tuple[str, ...], seed, adaptive: tuple[str, ...] = (), probability=0.0):
    """Applies the transforms in `policy` to every image and those in `adaptive` to each image
    with `probability`, in the paper's order (colour, translation, cutout)."""
    seed = tf.cast(seed, tf.int64)
    transforms = (("color", random_color), ("translation", random_translation), ("cutout", random_cutout))
    for salt, (name, transform) in enumerate(transforms, start=seeds.AUGMENT_TRANSFORMS):
        if name in policy:
            x = transform(x, seed)
        elif name in adaptive:
            x = _with_probability(transform, x, seed, salt, probability)
    return x


def _with_probability(transform, x, seed, salt, probability):
    """transform(x) for each image with `probability`; not computed at all at p = 0, where ADA
    starts and may stay for a while."""
    p = tf.cast(probability, tf.float32)
    chosen = _uniform([tf.shape(x)[0], 1, 1, 1], seed, salt) < p
    return tf.cond(p > 0, lambda: tf.where(chosen, transform(x, seed), x), lambda: x)


def adjusted_probability(probability, real_sign, target: float, images: int):
    """ADA's controller step: p + sign(r_t - target) * images / ADA_KIMG thousand, within [0, 1].

    r_t = `real_sign` is the mean of sign(D(x)) over the reals of the last `images`
    images (1: D calls every real image real; stylegan2-ada's target is 0.6).
    """
    step = tf.sign(tf.cast(real_sign, tf.float32) - target) * (images / (ADA_KIMG * 1000.0))
    return tf.clip_by_value(tf.cast(probability, tf.float32) + step, 0.0, 1.0)


class Augmenter:
    """Everything D sees goes through this: the transforms of `policy` on every image, those of
    `adaptive` with ADA's probability p, which the object keeps (checkpointed) and adjusts.

    Create it inside the strategy's scope: p and the running sum of D's real signs are variables.
    """

    def __init__(self, policy: str, adaptive: str, target: float, batch_size: int):
        self.policy, self.adaptive = parse_policy(policy), parse_policy(adaptive)
        self.target = target
        self.interval = max(1, ADA_INTERVAL // batch_size)  # steps between adjustments of p
        self.images_per_interval = self.interval * batch_size
        self.probability = tf.Variable(0.0, trainable=False, name="augment_p")
        self.real_sign_sum = tf.Variable(0.0, trainable=False, name="real_sign_sum")  # since p last moved

    @property
    def active(self) -> bool:
        return bool(self.policy or self.adaptive)

    def __call__(self, images, seed):
        if not self.active:
            return images
        return diff_augment(images, self.policy, seed, self.adaptive, self.probability)

    def adapt(self, real_sign, steps_done):
        """Adds this step's mean sign of D's real logits; every `interval` steps moves p by ADA's rule."""
        if not self.adaptive:
            return
        self.real_sign_sum.assign_add(tf.cast(real_sign, tf.float32))

        def adjust():
            mean_sign = self.real_sign_sum / self.interval
            self.probability.assign(
                adjusted_probability(self.probability, mean_sign, self.target, self.images_per_interval)
            )
            self.real_sign_sum.assign(0.0)
            return tf.constant(True)

        tf.cond((steps_done + 1) % self.interval == 0, adjust, lambda: tf.constant(False))

    def checkpoint_items(self) -> dict:
        """The state a resumed run needs (names as in checkpoints written before this class existed)."""
        return dict(augment_p=self.probability, real_sign_sum=self.real_sign_sum) if self.adaptive else {}
