"""What the networks minimise: one objective per loss family, and regularising terms.

An `Objective` owns D's loss, G's loss and how the log shows D's scores
(TF-GAN's losses_impl.py names the pure functions in `illustration_gan.losses`).
A `Term` is one regulariser with a side (D or G), a weight, a metric name and
what it reads from the forward pass (`Forward`): R1 (Mescheder et al. 2018),
the WGAN-GP gradient penalty (Gulrajani et al. 2017) and IllustrationGAN's
z-prediction loss (tdrussell/IllustrationGAN). Both are chosen once from the
config (`make_objective`, `make_terms`), so the compiled step has no branch on
a loss name and is traced once.

Every loss here is per example (or per score); the step averages them over the
global batch, which keeps gradients right under a distribution strategy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import tensorflow as tf

from illustration_gan import losses
from illustration_gan.config import Config, TrainingConfig


class Objective:
    """A loss family: per-score losses of D and G, and D's score as the log shows it."""

    name = ""

    def discriminator_loss(self, real_scores, fake_scores, swap_labels):
        raise NotImplementedError

    def generator_loss(self, fake_scores):
        raise NotImplementedError

    def display(self, scores):
        """What `D(x)` and `D(G(z))` in the log mean: raw scores unless a subclass says otherwise."""
        return scores


class Minimax(Objective):
    """BCE on D's logits with G's non-saturating loss (Goodfellow et al. 2014); targets
    0.95 / 0.05 with label smoothing, real and fake exchanged when the regime swaps labels."""

    name = "minimax"

    def __init__(self, label_smoothing: bool = False):
        self.label_smoothing = label_smoothing

    def discriminator_loss(self, real_scores, fake_scores, swap_labels):
        return losses.minimax_discriminator_loss(real_scores, fake_scores, self.label_smoothing, swap_labels)

    def generator_loss(self, fake_scores):
        return losses.non_saturating_generator_loss(fake_scores, self.label_smoothing)

    def display(self, scores):
        return tf.sigmoid(scores)  # D's probability that the image is real


class Hinge(Objective):
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) for D, -D(G(z)) for G (Lim & Ye 2017; SNGAN, SAGAN)."""

    name = "hinge"

    def discriminator_loss(self, real_scores, fake_scores, swap_labels):
        return losses.hinge_discriminator_loss(real_scores, fake_scores)

    def generator_loss(self, fake_scores):
        return losses.hinge_generator_loss(fake_scores)


class Wasserstein(Objective):
    """D(G(z)) - D(x) for the critic, -D(G(z)) for G (Arjovsky et al. 2017)."""

    name = "wasserstein"

    def discriminator_loss(self, real_scores, fake_scores, swap_labels):
        return losses.wasserstein_discriminator_loss(real_scores, fake_scores)

    def generator_loss(self, fake_scores):
        return losses.wasserstein_generator_loss(fake_scores)


def make_objective(training: TrainingConfig) -> Objective:
    if training.loss == "minimax":
        return Minimax(training.label_smoothing)
    return {"hinge": Hinge, "wasserstein": Wasserstein}[training.loss]()


@dataclass(frozen=True)
class Forward:
    """What one replica's forward pass produced, for the terms to read."""

    z: tf.Tensor
    fake: tf.Tensor
    features: tf.Tensor | None  # G's FC features (IllustrationGAN), for the z-predictor
    real: tf.Tensor  # before augmentation
    real_scores: tf.Tensor
    fake_scores: tf.Tensor
    real_gradients: tf.Tensor | None  # d D(x) / dx at the (augmented) reals D saw, when a term needs it
    seed: Callable[[int], tf.Tensor]  # salt -> this step's and replica's stateless seed


class Term:
    """A regularising loss added to one side's loss: `weight * mean(per_example(...))`."""

    name = ""
    side = "d"  # "d" or "g": whose loss it joins and whose weights it trains
    needs_real_gradients = False

    def __init__(self, weight: float):
        self.weight = weight

    def per_example(self, forward: Forward, networks) -> tf.Tensor:
        raise NotImplementedError


class R1Penalty(Term):
    """gamma / 2 * ||grad D(x)||^2 at the reals D saw, augmented or not, as stylegan2-ada."""

    name, side, needs_real_gradients = "r1_penalty", "d", True

    def __init__(self, gamma: float):
        super().__init__(0.5 * gamma)

    def per_example(self, forward, networks):
        return losses.r1_penalty(forward.real_gradients)


class GradientPenalty(Term):
    """(||grad D(x_hat)||_2 - 1)^2 on random interpolates of reals and fakes (WGAN-GP)."""

    name, side = "gradient_penalty", "d"

    def per_example(self, forward, networks):
        fake = tf.stop_gradient(forward.fake)
        return losses.wasserstein_gradient_penalty(networks.discriminator, forward.real, fake, forward.seed(2))


class ZPrediction(Term):
    """MSE between z and the z-predictor's estimate from G's FC features (IllustrationGAN)."""

    name, side = "zpred_loss", "g"

    def per_example(self, forward, networks):
        return losses.z_prediction_loss(forward.z, networks.z_predictor(forward.features, training=True))


def make_terms(config: Config) -> tuple[Term, ...]:
    t = config.training
    terms: list[Term] = []
    if t.gp_weight > 0:
        terms.append(GradientPenalty(t.gp_weight))
    if t.r1_gamma > 0:
        terms.append(R1Penalty(t.r1_gamma))
    if config.model.z_predictor:
        terms.append(ZPrediction(t.zpred_weight))
    return tuple(terms)
