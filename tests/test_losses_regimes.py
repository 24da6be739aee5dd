import numpy as np
import pytest
import tensorflow as tf

from illustration_gan import losses
from illustration_gan.training import regimes


def test_minimax_losses_match_the_formula():
    real = tf.constant([2.0, -1.0])
    fake = tf.constant([-3.0, 0.5])
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    expected_d = -np.log(sig(real.numpy())) - np.log(1 - sig(fake.numpy()))
    np.testing.assert_allclose(losses.minimax_discriminator_loss(real, fake), expected_d, rtol=1e-5)
    np.testing.assert_allclose(losses.non_saturating_generator_loss(fake), -np.log(sig(fake.numpy())), rtol=1e-5)


def test_label_smoothing_and_swapping_change_the_targets():
    logits = tf.constant([0.3])
    bce = lambda t, x: -(t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x))))  # noqa: E731
    smooth = losses.minimax_discriminator_loss(logits, logits, label_smoothing=True)
    np.testing.assert_allclose(smooth, bce(0.95, 0.3) + bce(0.05, 0.3), rtol=1e-5)
    real, fake = tf.constant([4.0]), tf.constant([-4.0])
    normal = losses.minimax_discriminator_loss(real, fake, swap_labels=False)
    swapped = losses.minimax_discriminator_loss(real, fake, swap_labels=True)
    assert float(swapped[0]) > 5 * float(normal[0])  # a confident D is punished when labels swap
    np.testing.assert_allclose(losses.non_saturating_generator_loss(logits, True), bce(0.95, 0.3), rtol=1e-5)


def test_hinge_losses_are_zero_beyond_the_margin_and_linear_inside():
    real, fake = tf.constant([2.0, 0.25, -1.0]), tf.constant([-3.0, -0.5, 1.0])
    np.testing.assert_allclose(losses.hinge_discriminator_loss(real, fake), [0.0, 0.75 + 0.5, 2.0 + 2.0])
    np.testing.assert_allclose(losses.hinge_generator_loss(fake), [3.0, 0.5, -1.0])


def test_wasserstein_and_zprediction_losses():
    np.testing.assert_allclose(losses.wasserstein_discriminator_loss(tf.constant([2.0]), tf.constant([0.5])), [-1.5])
    np.testing.assert_allclose(losses.wasserstein_generator_loss(tf.constant([0.5])), [-0.5])
    z = tf.constant([[1.0, 2.0]])
    np.testing.assert_allclose(losses.z_prediction_loss(z, tf.constant([[0.0, 0.0]])), [2.5])


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    critic = lambda x, training=True: tf.reduce_sum(x, axis=[1, 2, 3]) / np.sqrt(12.0)  # noqa: E731
    real = tf.random.normal([3, 2, 2, 3])
    penalty = losses.wasserstein_gradient_penalty(critic, real, tf.zeros_like(real), tf.constant([1, 2], tf.int64))
    np.testing.assert_allclose(penalty, 0.0, atol=1e-5)


def test_r1_penalty_is_the_squared_input_gradient_per_image():
    # D(x) = sum(x^2) has gradient 2x, so the penalty of image i is 4 * sum(x_i^2).
    critic = lambda x, training=True: tf.reduce_sum(tf.square(x), axis=[1, 2, 3])  # noqa: E731
    real = tf.random.normal([3, 2, 2, 3], seed=1)
    expected = 4.0 * tf.reduce_sum(tf.square(real), axis=[1, 2, 3])
    _, grads = losses.scores_and_input_gradients(critic, real)
    np.testing.assert_allclose(losses.r1_penalty(grads), expected, rtol=1e-5)


def decide(balance, d_loss, g_loss, **kwargs):
    out = regimes.decide(balance, tf.constant(d_loss), tf.constant(g_loss), step=tf.constant(0, tf.int64), **kwargs)
    return bool(out.update_d), bool(out.update_g), int(out.boost_mode), int(out.boost_left)


def test_margin_updates_only_the_network_that_is_behind():
    assert decide("margin", 0.5, 1.0, margin=1.0)[:2] == (True, True)
    assert decide("margin", 0.5, 3.0, margin=1.0)[:2] == (False, True)  # G far behind: only G
    assert decide("margin", 3.0, 0.5, margin=1.0)[:2] == (True, False)  # D far behind: only D


def test_monitor_updates_d_only_above_the_ratio():
    assert decide("monitor", 1.0, 1.0, monitor_ratio=0.8)[:2] == (True, True)
    assert decide("monitor", 0.7, 1.0, monitor_ratio=0.8)[:2] == (False, True)


@pytest.mark.parametrize(
    "k, expected",
    [
        (0.5, (True, True, regimes.NO_BOOST, 0)),  # normal step
        (0.95, (True, True, regimes.NO_BOOST, 0)),  # D step with swapped labels (see swap test)
        (5e-4, (True, False, regimes.D_BOOST, 99)),  # starts a D-only boost
        (5e-5, (False, True, regimes.G_BOOST, 99)),  # starts a G-only boost
    ],
)
def test_boost_decisions_outside_a_boost(k, expected):
    assert decide("boost", 1.0, 1.0, k=tf.constant(k), boost_mode=0, boost_left=0) == expected


def test_boost_runs_100_steps_then_ends():
    mode, left, updates = regimes.NO_BOOST, 0, []
    ks = [5e-4] + [0.5] * 100
    for k in ks:
        d, g, mode, left = decide("boost", 1.0, 1.0, k=tf.constant(k), boost_mode=mode, boost_left=left)
        updates.append((d, g))
    assert updates[:100] == [(True, False)] * 100
    assert updates[100] == (True, True) and mode == regimes.NO_BOOST


def test_label_swaps_for_boost_and_noisy_labels():
    swap = lambda *a: bool(regimes.swap_labels(*a))  # noqa: E731
    assert swap("boost", tf.constant(0.95), tf.constant(0.9), 0.0, tf.constant(0))
    assert not swap("boost", tf.constant(0.95), tf.constant(0.9), 0.0, tf.constant(regimes.D_BOOST))
    assert not swap("none", tf.constant(0.95), tf.constant(0.9), 0.0, tf.constant(0))
    assert swap("none", tf.constant(0.5), tf.constant(0.05), 0.1, tf.constant(0))


def test_n_critic_lets_g_update_every_nth_step():
    g_steps = []
    for step in range(6):
        out = regimes.decide("none", tf.constant(1.0), tf.constant(1.0), step=tf.constant(step, tf.int64), n_critic=3)
        g_steps.append(bool(out.update_g))
    assert g_steps == [False, False, True, False, False, True]
