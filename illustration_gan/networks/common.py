"""Pieces shared by every architecture: initialisers, latent sampling, base classes.

Generators and discriminators are `keras.Model` subclasses built from a
`ModelConfig` dict, so `generator.keras` files rebuild from their own config.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from illustration_gan.config import ModelConfig, from_dict
from illustration_gan.networks import fused_batch_norm


def weight_init(config: ModelConfig | None = None):
    """N(0, 0.02), the DCGAN paper's initialisation; with `init="xavier"`, Glorot uniform, as
    IllustrationGAN's prettytensor layers (tf.contrib xavier_initializer) and Keras 1's defaults."""
    if config is not None and config.init == "xavier":
        return keras.initializers.GlorotUniform()
    return keras.initializers.RandomNormal(stddev=0.02)


def batch_norm(config: ModelConfig | None = None):
    """PyTorch's defaults (momentum 0.1 = Keras 0.9, eps 1e-5) and the tutorial's gamma ~ N(1, 0.02).

    With `framework="prettytensor"`, prettytensor 0.6.2's `batch_normalize` as IllustrationGAN called it
    (no arguments; pretty_tensor_normalization_methods.py lines 75-77 and 103-106 at 5649411, the 0.6.2
    release): no learned scale (`scale_after_normalization=False`) and epsilon 1e-3. Its moving-average
    rate of 3e-4 never took effect there: the bookkeeper caps the decay at max(0.9, (1 + n) / (10 + n)) for
    its own `global_step` n (bookkeeper.py lines 312-314), which IllustrationGAN never increments (its
    optimisers step an unnamed variable, train.py line 60), so the decay stays 0.9: Keras' momentum 0.9.
    """
    if config is not None and config.framework == "prettytensor":
        return fused_batch_norm.BatchNormalization(momentum=0.9, epsilon=1e-3, scale=False)
    return fused_batch_norm.BatchNormalization(
        momentum=0.9, epsilon=1e-5, gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02)
    )


def sample_latents(batch: int, z_dim: int, distribution: str, seed) -> tf.Tensor:
    """Stateless z: the same `seed` (shape [2] int) always gives the same z."""
    shape = (batch, z_dim)
    if distribution == "normal":
        return tf.random.stateless_normal(shape, seed)
    if distribution == "truncated_normal":
        return tf.random.stateless_truncated_normal(shape, seed)
    if distribution == "uniform":
        return tf.random.stateless_uniform(shape, seed, minval=-1.0, maxval=1.0)
    raise ValueError(f"unknown z distribution {distribution!r}")


def level_widths(base: int, levels: int, coarse_first: bool, max_width: int = 512) -> list[int]:
    """Channel widths per resolution level: `base` at the finest, doubling up to `max_width`."""
    fine_first = [min(max_width, base * 2**i) for i in range(levels)]
    return fine_first[::-1] if coarse_first else fine_first


class ConfiguredModel(keras.Model):
    """A model whose whole constructor argument is a ModelConfig as a dict."""

    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        self.model_config = from_dict(ModelConfig, config)  # files saved with since-pruned fields still load
        self._config_dict = dataclasses.asdict(self.model_config)

    def get_config(self):
        return {"config": self._config_dict, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Generator(ConfiguredModel):
    """Maps z (N, z_dim) to images (N, S, S, 3) in [-1, 1].

    `call(z, training, return_features=True)` also returns the features a
    z-predictor reads (IllustrationGAN); architectures without them return None.
    """

    def sample_latents(self, batch: int, seed) -> tf.Tensor:
        return sample_latents(batch, self.model_config.z_dim, self.model_config.z_distribution, seed)


class Discriminator(ConfiguredModel):
    """Maps images to one float32 score per image (a logit, or a critic value)."""

    @property
    def scores_each_image_alone(self) -> bool:
        """Whether an image's score depends on that image alone: no batch norm, no minibatch
        discrimination, no spectral norm (whose power iteration steps once per call). Then the
        training step scores reals and fakes in one call, which is the same computation as two."""
        from illustration_gan.networks.layers import MinibatchDiscrimination, MinibatchDiscrimination2D, _SpectralNorm

        batch_dependent = (keras.layers.BatchNormalization, MinibatchDiscrimination, MinibatchDiscrimination2D,
                           _SpectralNorm)
        return not any(isinstance(layer, batch_dependent) for layer in self._flatten_layers(include_self=False))

    def score_pair(self, real, fake, real_gradients: bool = False):
        """The training-mode scores of `real` and of `fake`, and (if asked) the gradient of the real
        scores with respect to `real` (for R1). Where D scores each image alone, one call on both:
        one larger batch runs faster on a CPU than two small ones, with the same scores and gradients."""
        if self.scores_each_image_alone:
            count = tf.shape(real)[0]
            both = tf.concat([real, tf.cast(fake, real.dtype)], axis=0)
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(both)
                scores = self(both, training=True)
                real_scores, fake_scores = scores[:count], scores[count:]
            return real_scores, fake_scores, tape.gradient(real_scores, both)[:count] if real_gradients else None
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(real)
            real_scores = self(real, training=True)
        fake_scores = self(fake, training=True)
        return real_scores, fake_scores, tape.gradient(real_scores, real) if real_gradients else None

    def _make_head(self, score=None):
        """Minibatch discrimination features (optional) and the final linear unit (`score`, when given)."""
        from illustration_gan.networks.layers import MinibatchDiscrimination, SpectralNormDense

        c = self.model_config
        self.flatten = keras.layers.Flatten()
        self.minibatch = None
        if c.minibatch_kernels > 0 and c.minibatch_place == "head":
            xavier = c.init == "xavier"  # IllustrationGAN's custom_ops.py: Xavier W and a bias per kernel
            self.minibatch = MinibatchDiscrimination(
                c.minibatch_kernels, c.minibatch_dims, use_bias=xavier, xavier=xavier,
                count_self=c.framework == "prettytensor", dtype="float32",
            )
        dense = SpectralNormDense if c.spectral_norm else keras.layers.Dense
        self.score = score or dense(1, kernel_initializer=weight_init(c), dtype="float32")

    def _minibatch_features(self, flat):
        if self.minibatch is None:
            return None
        return self.minibatch(tf.cast(flat, tf.float32))

    def _score(self, features, minibatch_features):
        features = tf.cast(features, tf.float32)
        head = features if minibatch_features is None else tf.concat([features, minibatch_features], axis=-1)
        return tf.squeeze(self.score(head), axis=-1)
