"""When the discriminator and the generator update, decided inside the compiled step.

Rules from the source projects:
- none: one D step and one G step per batch.
- margin (the Keras face GAN project): when |L_G - L_D| > margin, only the network
  that is behind (the one with the larger loss) updates; otherwise both do.
- monitor (Pokemon GAN): D updates only when L_D > monitor_ratio * L_G; G always.
- boost (Pokemon GAN): each step draws k ~ U(0, 1). Outside a boost:
  1e-4 < k < 1e-3 starts 100 steps of D-only training, k < 1e-4 starts 100 steps
  of G-only training, k >= 0.93 is a D step with swapped labels, else a normal
  D step; G steps whenever k > 1e-3. During a boost only the boosted network updates.
And independently of the rule: `noisy_labels` swaps real/fake targets of a D step
with that probability, and `n_critic` lets G update only on every n-th step.

All functions take and return tensors and use no Python branching on values, so
the step is traced once. The losses they see are the current batch's (computed
before either update is applied).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

BOOST_STEPS = 100
NO_BOOST, D_BOOST, G_BOOST = 0, 1, 2


class Decision(NamedTuple):
    update_d: tf.Tensor  # bool
    update_g: tf.Tensor  # bool
    boost_mode: tf.Tensor  # int32: NO_BOOST, D_BOOST or G_BOOST after this step
    boost_left: tf.Tensor  # int32: boost steps left after this step


def swap_labels(balance: str, k, noise_draw, noisy_labels: float, boost_mode):
    """Whether this D step trains with real and fake labels exchanged."""
    swap = tf.less(noise_draw, noisy_labels)
    if balance == "boost":
        swap = tf.logical_or(swap, tf.logical_and(tf.equal(boost_mode, NO_BOOST), k >= 0.93))
    return swap


def decide(
    balance: str,
    d_loss,
    g_loss,
    *,
    step,
    k=None,
    boost_mode=None,
    boost_left=None,
    margin: float = 1.0,
    monitor_ratio: float = 0.8,
    n_critic: int = 1,
) -> Decision:
    """The update decision for one step (see the module docstring for the rules)."""
    true = tf.constant(True)
    zero = tf.constant(0, tf.int32)
    mode = zero if boost_mode is None else tf.cast(boost_mode, tf.int32)
    left = zero if boost_left is None else tf.cast(boost_left, tf.int32)
    if balance == "none":
        update_d, update_g = true, true
    elif balance == "margin":
        gap = g_loss - d_loss
        update_d = gap <= margin  # G is not too far behind
        update_g = -gap <= margin  # D is not too far behind
    elif balance == "monitor":
        update_d, update_g = d_loss > monitor_ratio * g_loss, true
    elif balance == "boost":
        in_boost = left > 0
        start_d = tf.logical_and(k > 1e-4, k < 1e-3)
        start_g = k <= 1e-4
        new_mode = tf.where(in_boost, mode, tf.where(start_d, D_BOOST, tf.where(start_g, G_BOOST, NO_BOOST)))
        new_left = tf.where(in_boost, left - 1, tf.where(tf.logical_or(start_d, start_g), BOOST_STEPS - 1, 0))
        update_d = tf.not_equal(new_mode, G_BOOST)
        update_g = tf.where(in_boost, tf.equal(mode, G_BOOST), tf.logical_or(start_g, k > 1e-3))
        mode = tf.where(new_left > 0, new_mode, NO_BOOST)
        left = new_left
    else:
        raise ValueError(f"unknown balance rule {balance!r}")
    if n_critic > 1:
        update_g = tf.logical_and(update_g, tf.equal(tf.math.floormod(step + 1, n_critic), 0))
    return Decision(update_d, update_g, mode, left)


class Regime:
    """The rule of a run with its state (the boost phase), deciding each step in-graph.

    Create it inside the strategy's scope. `checkpoint_items` keeps the names that
    checkpoints have always used, so older runs resume.
    """

    def __init__(self, training):
        self.training = training
        self.boost_mode = tf.Variable(0, dtype=tf.int32, trainable=False, name="boost_mode")
        self.boost_left = tf.Variable(0, dtype=tf.int32, trainable=False, name="boost_left")

    def swap_labels(self, k, noise_draw):
        t = self.training
        return swap_labels(t.balance, k, noise_draw, t.noisy_labels, self.boost_mode)

    def decide(self, d_loss, g_loss, step, k) -> Decision:
        """This step's decision; the boost state advances with it."""
        t = self.training
        decision = decide(
            t.balance, d_loss, g_loss, step=step, k=k, boost_mode=self.boost_mode, boost_left=self.boost_left,
            margin=t.margin, monitor_ratio=t.monitor_ratio, n_critic=t.n_critic,
        )
        self.boost_mode.assign(decision.boost_mode)
        self.boost_left.assign(decision.boost_left)
        return decision

    def checkpoint_items(self) -> dict:
        return dict(boost_mode=self.boost_mode, boost_left=self.boost_left)
