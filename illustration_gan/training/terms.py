"""Regularising terms of the discriminator, each one a loss added to D's with a weight.

A `Term` has a weight, a metric name and what it reads from the forward pass
(`Forward`): R1 (Mescheder et al. 2018, "Which Training Methods for GANs do
actually Converge?"), the WGAN-GP gradient penalty (Gulrajani et al. 2017) and
LeCam (Tseng et al. 2021), which keeps moving averages of D's logits as its state.
The set is chosen once from the config (`make_terms`), inside the strategy's scope. IllustrationGAN's
z-prediction is not a term: its source trains it in a step of its own (step.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import tensorflow as tf

from illustration_gan import losses
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
    """A regularising loss added to D's loss: `weight * mean(per_example(...))`.

    A term with state also names per-example `statistics` for the step to average and
    log, reads them back once a step in `observe` (cross-replica context), and lists
    the variables a resumed run needs in `checkpoint_items`.
    """

    name = ""
    needs_real_gradients = False
    statistic_names: tuple[str, ...] = ()

    def __init__(self, weight: float):
        self.weight = weight

    def per_example(self, forward: Forward, networks) -> tf.Tensor:
        raise NotImplementedError

    def statistics(self, forward: Forward) -> dict[str, tf.Tensor]:
        return {}

    def observe(self, metrics: dict, step: tf.Variable) -> None:
        pass

    def checkpoint_items(self) -> dict:
        return {}


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
        return losses.wasserstein_gradient_penalty(networks.discriminator, forward.real, fake, forward.seed(2))


class LeCam(Term):
    """LeCam regularisation: D's logits on reals are pulled towards the moving average of its
    logits on fakes and the other way round (Tseng et al. 2021, eq. 3), which bounds how far D
    can separate the training images when it starts to learn them by heart.

    As google/lecam-gan runs BigGAN on CIFAR with DiffAugment translation and cutout
    (biggan_cifar/scripts/lc-DiffAugment-biggan-cifar10-0.1.sh: `--LC 0.3`): the anchors are
    moving averages of the batch-mean logits with decay 0.9 that follow the last batch exactly
    for the first 1,000 iterations (third_party/utils.py `ema_losses`, `start_itr=1000` in
    biggan_cifar/train.py), and the term is added only after them (third_party/train_fns.py
    lines 56-60). The source updates the anchors with the current batch before the penalty
    (in its D loss); here a step's penalty reads the anchors of the steps before it, and the
    step updates them after, once from the all-reduced means, so every replica holds the same.
    """

    name = "lecam"
    statistic_names = ("lecam_real_logit", "lecam_fake_logit")

    def __init__(self, weight: float, decay: float = 0.9, start: int = 1000):
        super().__init__(weight)
        self.decay, self.start = decay, start
        self.real_anchor = tf.Variable(0.0, trainable=False, name="lecam_real_anchor")
        self.fake_anchor = tf.Variable(0.0, trainable=False, name="lecam_fake_anchor")
        self.active = tf.Variable(0.0, trainable=False, name="lecam_active")  # 1 once `start` steps ran

    def per_example(self, forward, networks):
        penalty = losses.lecam_penalty(forward.real_scores, forward.fake_scores, self.real_anchor, self.fake_anchor)
        return self.active * penalty

    def statistics(self, forward):
        return {"lecam_real_logit": tf.stop_gradient(forward.real_scores),
                "lecam_fake_logit": tf.stop_gradient(forward.fake_scores)}

    def observe(self, metrics, step):
        decay = tf.where(step < self.start, 0.0, self.decay)
        for anchor, mean in ((self.real_anchor, metrics["lecam_real_logit"]),
                             (self.fake_anchor, metrics["lecam_fake_logit"])):
            anchor.assign(decay * anchor + (1.0 - decay) * tf.cast(mean, tf.float32))
        self.active.assign(tf.cast(step + 1 >= self.start, tf.float32))

    def checkpoint_items(self):
        return dict(lecam_real_anchor=self.real_anchor, lecam_fake_anchor=self.fake_anchor, lecam_active=self.active)


def make_terms(config: Config) -> tuple[Term, ...]:
    t = config.training
    terms: list[Term] = []
    if t.gp_weight > 0:
        terms.append(GradientPenalty(t.gp_weight))
    if t.r1_gamma > 0:
        terms.append(R1Penalty(t.r1_gamma))
    if t.lecam_weight > 0:
        terms.append(LeCam(t.lecam_weight))
    return tuple(terms)
