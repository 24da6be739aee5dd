"""The model registry: architecture name -> generator and discriminator classes.

Adding an architecture = one module with a Generator and a Discriminator
subclass (see common.py) and one line in ARCHITECTURES.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import keras

from illustration_gan.config import ModelConfig
from illustration_gan.networks.common import Discriminator, Generator, sample_latents
from illustration_gan.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from illustration_gan.networks.dense import DenseDiscriminator, DenseGenerator
from illustration_gan.networks.keras_margin import KerasMarginDiscriminator, KerasMarginGenerator
from illustration_gan.networks.lightweight import LightweightDiscriminator, LightweightGenerator
from illustration_gan.networks.illustration import (
    IllustrationDiscriminator,
    IllustrationGenerator,
    ZPredictor,
)
from illustration_gan.networks.layers import BilinearUpsample2x, MinibatchDiscrimination, MinibatchDiscrimination2D

ARCHITECTURES: dict[str, tuple[type[Generator], type[Discriminator]]] = {
    "illustration": (IllustrationGenerator, IllustrationDiscriminator),
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
    "dense": (DenseGenerator, DenseDiscriminator),
    "keras_margin": (KerasMarginGenerator, KerasMarginDiscriminator),
    "lightweight": (LightweightGenerator, LightweightDiscriminator),
}


class Networks(NamedTuple):
    generator: Generator
    discriminator: Discriminator
    z_predictor: keras.Model | None


def build_networks(config: ModelConfig) -> Networks:
    """Builds (and creates the weights of) the networks described by `config`."""
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.architecture!r}; choose from {sorted(ARCHITECTURES)}")
    generator_cls, discriminator_cls = ARCHITECTURES[config.architecture]
    as_dict = dataclasses.asdict(config)
    generator = generator_cls(as_dict, name="generator")
    discriminator = discriminator_cls(as_dict, name="discriminator")
    z = keras.ops.zeros((2, config.z_dim))
    images, features = generator(z, return_features=True)
    discriminator(images)
    z_predictor = None
    if config.z_predictor:
        z_predictor = ZPredictor(as_dict, name="z_predictor")
        z_predictor(features)
    return Networks(generator, discriminator, z_predictor)


__all__ = [
    "ARCHITECTURES",
    "BilinearUpsample2x",
    "Discriminator",
    "Generator",
    "MinibatchDiscrimination",
    "Networks",
    "build_networks",
    "sample_latents",
]
