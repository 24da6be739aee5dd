"""What the networks minimise: one objective per loss family.

An `Objective` owns D's loss, G's loss and how the log shows D's scores; the
pure functions it calls are in `illustration_gan.training.losses` (named as TF-GAN's
losses_impl.py). It is chosen once from the config (`make_objective`), so the
compiled step has no branch on a loss name and is traced once. Regularisers
added to either side are in `terms.py`.

Every loss here is per score; the step averages them over the global batch,
which keeps gradients right under a distribution strategy.
"""

from __future__ import annotations

import tensorflow as tf

from illustration_gan.training import losses
from illustration_gan.config import TrainingConfig


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
