"""Fully connected GAN, after the cartoon faces project (and Goodfellow et al. 2014).

Generator: two fully connected layers with batch norm and ReLU, then one to
S*S*3 with tanh. Discriminator: two fully connected layers with LeakyReLU 0.2
and dropout 0.3, one logit. A baseline for the convolutional models.
"""

from __future__ import annotations

import keras

from illustration_gan.networks.common import Discriminator, Generator, batch_norm, weight_init

PACKAGE = "illustration_gan"


@keras.saving.register_keras_serializable(package=PACKAGE)
class DenseGenerator(Generator):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        s = c.image_size
        self.net = keras.Sequential(
            [
                keras.layers.Dense(c.fc_units // 2, use_bias=False, kernel_initializer=weight_init()),
                batch_norm(),
                keras.layers.ReLU(),
                keras.layers.Dense(c.fc_units, use_bias=False, kernel_initializer=weight_init()),
                batch_norm(),
                keras.layers.ReLU(),
                keras.layers.Dense(s * s * 3, kernel_initializer=weight_init()),
                keras.layers.Activation("tanh", dtype="float32"),
                keras.layers.Reshape((s, s, 3)),
            ],
            name="net",
        )

    def call(self, z, training=False, return_features=False):
        images = self.net(z, training=training)
        return (images, None) if return_features else images


@keras.saving.register_keras_serializable(package=PACKAGE)
class DenseDiscriminator(Discriminator):
    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        c = self.model_config
        self.body = keras.Sequential(
            [
                keras.layers.Flatten(),
                keras.layers.Dense(c.fc_units, kernel_initializer=weight_init()),
                keras.layers.LeakyReLU(0.2),
                keras.layers.Dropout(0.3),
                keras.layers.Dense(c.fc_units // 2, kernel_initializer=weight_init()),
                keras.layers.LeakyReLU(0.2),
                keras.layers.Dropout(0.3),
            ],
            name="body",
        )
        self._make_head()

    def call(self, images, training=False):
        flat = self.flatten(self.body(images, training=training))
        return self._score(flat, self._minibatch_features(flat))
