"""IllustrationGAN (Jon Boesen, 2016; tdrussell/IllustrationGAN at aecb729, model.py and custom_ops.py).

Generator (model.py lines 75-109): three fully connected layers of 1024 with ReLU,
a fourth to 4x4x512 (the "features" the z-predictor reads), then per level a fixed
2x bilinear upsampling and a stride-1 5x5 convolution with batch norm and ReLU; a
last 5x5 convolution to RGB with tanh. The source upsamples with a depthwise
transposed convolution of stride 2 and the fixed 3x3 kernel [[.25, .5, .25],
[.5, 1, .5], [.25, .5, .25]] (custom_ops.py line 206, `upsample_bilinear_2x`), i.e. bilinear
interpolation on the input's own grid, where one border row and column of the
output get only half the kernel's weight; `BilinearUpsample2x` interpolates with
half-pixel centres (tf.image.resize), which keeps a constant image constant.

Discriminator (lines 111-133): per level dropout 0.5 (not on the first), a
stride-1 5x5 convolution, batch norm (not on the first), LeakyReLU 0.1 and 2x2
max pooling; minibatch discrimination (B=100, C=5) on the flattened features, two
fully connected layers of 1024 with LeakyReLU 0.1, the minibatch features
concatenated, one logit.

z-predictor (lines 98-107): three fully connected layers of 1024 with ReLU and a
linear layer to z, reading the generator's features; it is trained in a step of
its own (see training/step.py).

With `init="xavier"` (the preset) every weight is Glorot uniform, as the
source's prettytensor layers (tf.contrib xavier_initializer), and every
convolution, batch norm or not, has a bias, as upsample_conv and conv2d do;
minibatch discrimination gets a bias per kernel (custom_ops.py lines 113-128).
Runs recorded before that field existed rebuild with N(0, 0.02) and no biases
before batch norm.

With `framework="prettytensor"` (the preset) the rest follows the source's libraries too:
batch norm is prettytensor 0.6.2's default, without a learned scale and with epsilon 1e-3
(`common.batch_norm`); the last fully connected layer makes 4x4 x (the first level's width),
as model.py line 82 does (`starting_size**2 * num_filters / 2`: 4x4x512 at 64 px, 4x4x256 at
the 32 px of its CIFAR setting, input.py lines 152-159); and minibatch discrimination counts
each sample's closeness to itself, as custom_ops.py line 126 does. Runs recorded before that
field existed rebuild with a learned scale, epsilon 1e-5 and 4x4x512.
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


def _dense(config, units, activation=None, dtype=None):
    return keras.layers.Dense(units, activation=activation, kernel_initializer=weight_init(config), dtype=dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class IllustrationGenerator(Generator):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        widths = level_widths(c.g_width, c.levels, coarse_first=True)
        xavier = c.init == "xavier"  # the source's convolutions have biases, batch norm or not
        top = widths[0] if c.framework == "prettytensor" else 512
        self.fully_connected = keras.Sequential(
            [_dense(c, c.fc_units, "relu") for _ in range(3)] + [_dense(c, 4 * 4 * top, "relu")],
            name="fully_connected",
        )
        self.reshape = keras.layers.Reshape((4, 4, top))
        blocks = []
        for width in widths:
            blocks += [
                BilinearUpsample2x(),
                keras.layers.Conv2D(width, 5, 1, "same", use_bias=xavier, kernel_initializer=weight_init(c)),
                batch_norm(c),
                keras.layers.ReLU(),
            ]
        blocks.append(keras.layers.Conv2D(3, 5, 1, "same", kernel_initializer=weight_init(c)))
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
        xavier = c.init == "xavier"
        layers = []
        for i, width in enumerate(level_widths(c.d_width, c.levels, coarse_first=False)):
            if i > 0:
                layers.append(keras.layers.Dropout(0.5))
            normalised = i > 0 and c.d_norm == "batch"
            layers.append(keras.layers.Conv2D(
                width, 5, 1, "same", use_bias=xavier or not normalised, kernel_initializer=weight_init(c)
            ))
            if normalised:
                layers.append(batch_norm(c))
            layers.append(keras.layers.LeakyReLU(0.1))
            layers.append(keras.layers.MaxPooling2D(2))
        self.body = keras.Sequential(layers, name="body")
        self.fully_connected = keras.Sequential(
            [_dense(c, c.fc_units), keras.layers.LeakyReLU(0.1), _dense(c, c.fc_units), keras.layers.LeakyReLU(0.1)],
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
            [_dense(c, c.fc_units, "relu") for _ in range(3)] + [_dense(c, c.z_dim, dtype="float32")],
            name="net",
        )

    def call(self, features, training=False):
        return self.net(features, training=training)
