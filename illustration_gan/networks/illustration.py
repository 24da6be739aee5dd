"""IllustrationGAN (Jon Boesen, 2016; github.com/tdrussell/IllustrationGAN).

Generator: three fully connected layers of 1024 with ReLU, a fourth to 4x4x512
(the "features" the z-predictor reads), then per level a fixed 2x bilinear
upsampling and a stride-1 5x5 convolution with batch norm and ReLU; a last 5x5
convolution to RGB with tanh. No learned up- or down-sampling anywhere.

Discriminator: per level dropout 0.5 (not on the first), a stride-1 5x5
convolution, batch norm (not on the first), LeakyReLU 0.1 and 2x2 max pooling;
then minibatch discrimination on the flattened features, two fully connected
layers of 1024, the minibatch features concatenated, one logit.

z-predictor: reads the generator's features and predicts z, so the generator's
fully connected stack cannot discard parts of z (the source's answer to mode
collapse).
"""

from __future__ import annotations

import keras

from illustration_gan.networks.common import (
    ConfiguredModel,
    Discriminator,
    Generator,
    batch_norm,
    level_widths,
    weight_init,
)
from illustration_gan.networks.layers import BilinearUpsample2x

PACKAGE = "illustration_gan"


def _dense(units, activation=None, dtype=None):
    return keras.layers.Dense(units, activation=activation, kernel_initializer=weight_init(), dtype=dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class IllustrationGenerator(Generator):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        widths = level_widths(c.g_width, c.levels, coarse_first=True)
        self.fully_connected = keras.Sequential(
            [_dense(c.fc_units, "relu") for _ in range(3)] + [_dense(4 * 4 * 512, "relu")],
            name="fully_connected",
        )
        self.reshape = keras.layers.Reshape((4, 4, 512))
        blocks = []
        for width in widths:
            blocks += [
                BilinearUpsample2x(),
                keras.layers.Conv2D(width, 5, 1, "same", use_bias=False, kernel_initializer=weight_init()),
                batch_norm(),
                keras.layers.ReLU(),
            ]
        blocks.append(keras.layers.Conv2D(3, 5, 1, "same", kernel_initializer=weight_init()))
        blocks.append(keras.layers.Activation("tanh", dtype="float32"))
        self.upsample = keras.Sequential(blocks, name="upsample")

    def call(self, z, training=False, return_features=False):
        features = self.fully_connected(z, training=training)
        images = self.upsample(self.reshape(features), training=training)
        return (images, features) if return_features else images


@keras.saving.register_keras_serializable(package=PACKAGE)
class IllustrationDiscriminator(Discriminator):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        layers = []
        for i, width in enumerate(level_widths(c.d_width, c.levels, coarse_first=False)):
            if i > 0:
                layers.append(keras.layers.Dropout(0.5))
            normalised = i > 0 and c.d_norm == "batch"
            layers.append(keras.layers.Conv2D(width, 5, 1, "same", use_bias=not normalised, kernel_initializer=weight_init()))
            if normalised:
                layers.append(batch_norm())
            layers.append(keras.layers.LeakyReLU(0.1))
            layers.append(keras.layers.MaxPooling2D(2))
        self.body = keras.Sequential(layers, name="body")
        self.fully_connected = keras.Sequential(
            [_dense(c.fc_units), keras.layers.LeakyReLU(0.1), _dense(c.fc_units), keras.layers.LeakyReLU(0.1)],
            name="fully_connected",
        )
        self._make_head()

    def call(self, images, training=False):
        flat = self.flatten(self.body(images, training=training))
        minibatch = self._minibatch_features(flat)
        return self._score(self.fully_connected(flat, training=training), minibatch)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ZPredictor(ConfiguredModel):
    """Generator features -> predicted z (linear output)."""

    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        self.net = keras.Sequential(
            [_dense(c.fc_units, "relu") for _ in range(3)] + [_dense(c.z_dim, dtype="float32")],
            name="net",
        )

    def call(self, features, training=False):
        return self.net(features, training=training)
