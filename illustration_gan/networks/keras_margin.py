"""The Keras margin-balanced GAN (jhayes14/GAN at 46fd50a, model.py lines 21-58).

Generator: a dense layer to 4x4x1024 with batch norm and ReLU, then per level a
nearest-neighbour 2x upsampling and a 5x5 convolution with batch norm and ReLU
(512, 256, 128 at 64 px), and a last upsampling with a 5x5 convolution to RGB and
tanh. Discriminator: 5x5 stride-2 convolutions of 128, 256, 512, 1024 channels,
each with LeakyReLU 0.2 and dropout 0.2 and no batch norm, then one unit (the
source applies the sigmoid in the model; here it is in the loss). Keras 1's
defaults: Glorot uniform weights and biases everywhere.

Batch norm with `framework="keras1"` (the preset) is what Keras 1.0.5 (June 2016, current when
the source's images were made on 30 June) computed for that code: its `BatchNormalization()`
defaults (epsilon 1e-6, momentum 0.9, axis -1; keras/layers/normalization.py line 58), and the
source's model is channels-first (Keras 1's default `th` ordering; model.py line 28 reshapes to
(1024, 4, 4), line 48 takes (3, 64, 64)), so after each convolution axis -1 is the image's width:
each of its columns is normalised over the batch, the channels and the rows, with a scale and an
offset per column. Here that is Keras' layer with `axis=2` on channels-last maps. The batch norm
after the dense layer normalises each feature, as in the source. Runs recorded before that field
existed rebuild with Keras 3's defaults per channel (epsilon 1e-3, momentum 0.99).
"""

from __future__ import annotations

import keras

from illustration_gan.networks.common import Discriminator, Generator, level_widths
from illustration_gan.networks.fused_batch_norm import BatchNormalization

PACKAGE = "illustration_gan"


def _batch_norm(config, conv: bool):
    if config.framework != "keras1":
        return BatchNormalization()
    return BatchNormalization(axis=2 if conv else -1, momentum=0.9, epsilon=1e-6)


def _conv(width, strides=1):
    return keras.layers.Conv2D(width, 5, strides, "same", kernel_initializer="glorot_uniform")


@keras.saving.register_keras_serializable(package=PACKAGE)
class KerasMarginGenerator(Generator):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        self.project = keras.Sequential(
            [keras.layers.Dense(4 * 4 * c.max_width), _batch_norm(c, conv=False), keras.layers.ReLU(),
             keras.layers.Reshape((4, 4, c.max_width))],
            name="project",
        )
        blocks = []
        for width in level_widths(c.g_width, c.levels - 1, coarse_first=True, max_width=c.max_width):
            blocks += [keras.layers.UpSampling2D(2), _conv(width), _batch_norm(c, conv=True), keras.layers.ReLU()]
        blocks += [keras.layers.UpSampling2D(2), _conv(3), keras.layers.Activation("tanh", dtype="float32")]
        self.upsample = keras.Sequential(blocks, name="upsample")

    def call(self, z, training=False, return_features=False):
        images = self.upsample(self.project(z, training=training), training=training)
        return (images, None) if return_features else images


@keras.saving.register_keras_serializable(package=PACKAGE)
class KerasMarginDiscriminator(Discriminator):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        layers = []
        for width in level_widths(c.d_width, c.levels, coarse_first=False, max_width=c.max_width):
            layers += [_conv(width, 2), keras.layers.LeakyReLU(0.2), keras.layers.Dropout(0.2)]
        self.body = keras.Sequential(layers, name="body")
        self._make_head()

    def call(self, images, training=False):
        flat = self.flatten(self.body(images, training=training))
        return self._score(flat, self._minibatch_features(flat))
