"""Regularising terms of the discriminator, each one a loss added to D's with a weight.

A `Term` has a weight, a metric name and what it reads from the forward pass
(`Forward`): R1 (Mescheder et al. 2018, "Which Training Methods for GANs do
actually Converge?") and the WGAN-GP gradient penalty (Gulrajani et al. 2017).
The set is chosen once from the config (`make_terms`). IllustrationGAN's
z-prediction is not a term: its source trains it in a step of its own (step.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import tensorflow as tf

from illustration_gan.training import losses, seeds
from illustration_gan.config import Config


@dataclass(frozen=True)
class Forward:
    """What one replica's forward pass produced, for the terms to read."""

    fake: tf.Tensor
    real: tf.Tensor  # before augmentation
    real_scores: tf.Tensor
    fake_scores: tf.Tensor
    real_gradients: tf.Tensor | None  # d D(x) / dx at the (augmented) reals D saw, when a term needs it
    seed: Callable[[int], tf.Tensor]  # salt -> this step's and replica's stateless seed


class Term:
    """A regularising loss added to D's loss: `weight * mean(per_example(...))`."""

    name = ""
    needs_real_gradients = False

    def __init__(self, weight: float):
        self.weight = weight

    def per_example(self, forward: Forward, networks) -> tf.Tensor:
        raise NotImplementedError


class R1Penalty(Term):
    """gamma / 2 * ||grad D(x)||^2 at the reals D saw, augmented or not, as stylegan2-ada."""

    name, needs_real_gradients = "r1_penalty", True

    def __init__(self, gamma: float):
        super().__init__(0.5 * gamma)

    def per_example(self, forward, networks):
        return losses.r1_penalty(forward.real_gradients)


class GradientPenalty(Term):
    """(||grad D(x_hat)||_2 - 1)^2 on random interpolates of reals and fakes (WGAN-GP)."""

    name = "gradient_penalty"

    def per_example(self, forward, networks):
        fake = tf.stop_gradient(forward.fake)
        return losses.wasserstein_gradient_penalty(networks.discriminator, forward.real, fake, forward.seed(seeds.GP))


def make_terms(config: Config) -> tuple[Term, ...]:
    t = config.training
    terms: list[Term] = []
    if t.gp_weight > 0:
        terms.append(GradientPenalty(t.gp_weight))
    if t.r1_gamma > 0:
        terms.append(R1Penalty(t.r1_gamma))
    return tuple(terms)
