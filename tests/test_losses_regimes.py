import numpy as np
import pytest
import tensorflow as tf

from illustration_gan.training import losses
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


def source_boosting(ks):
    """Edouard99/GAN training_boosting.py (06d4eb2) lines 63-166, transcribed: per iteration, the
    D updates (with their label swap) and the number of G updates."""
    ndis = ngen = 0
    boostdis = boostgen = False
    out = []
    for k in ks:
        d_updates, swapped, g_updates = 0, False, 0
        if (0.0001 < k < 0.001 or boostdis) and not boostgen:
            if ndis == 0:
                boostdis = True
            d_updates += 1
            ndis += 1
            if ndis == 100:
                boostdis, ndis = False, 0
        if k < 0.93 and not boostdis and not boostgen:
            d_updates += 1
        if k >= 0.93 and not boostdis and not boostgen:
            d_updates, swapped = d_updates + 1, True
        if (k < 0.0001 or boostgen) and not boostdis:
            if ngen == 0:
                boostgen = True
            g_updates += 1
            ngen += 1
            if ngen == 100:
                boostgen, ngen = False, 0
        if k >= 0.001 and not boostdis and not boostgen:
            g_updates += 1
        out.append((d_updates, swapped, g_updates))
    return out


def test_boost_plan_follows_the_source_code_iteration_by_iteration():
    rng = np.random.default_rng(0)
    ks = list(rng.uniform(size=600))
    ks[10], ks[250], ks[400] = 5e-4, 5e-5, 0.95  # a D boost, a G boost, a label swap
    ks[120] = 5e-5  # a G-boost draw during... (after) the D boost: starts a G boost of its own
    expected = source_boosting(ks)
    d_boost = g_boost = 0
    got = []
    for step, k in enumerate(ks):
        p = regimes.plan("boost", tf.constant(k, tf.float32), tf.constant(step, tf.int64), d_boost, g_boost)
        d_boost, g_boost = int(p.d_boost), int(p.g_boost)
        got.append((int(p.d_updates), bool(p.swap_labels), int(p.g_updates)))
    assert got == expected
    assert got[10] == (1, False, 0) and got[109] == (2, False, 1)  # the boost's last iteration updates D twice
    assert sum(g == 0 for _, _, g in got[10:110]) == 99


def test_n_critic_lets_g_update_on_every_nth_iteration_from_the_first():
    plans = [regimes.plan("none", tf.constant(0.5), tf.constant(step, tf.int64), n_critic=3) for step in range(6)]
    assert [int(p.g_updates) for p in plans] == [1, 0, 0, 1, 0, 0]  # training_wgan.py: iters % 3 == 0
    assert all(int(p.d_updates) == 1 and not bool(p.swap_labels) for p in plans)


def source_margin(d_loss, g_loss, d_repeats, g_repeats, margin=0.10):
    """jhayes14/GAN train.py lines 123-141, transcribed; the repeats' losses come from the lists."""
    d_repeats, g_repeats, done = list(d_repeats), list(g_repeats), 0
    if g_loss < d_loss and abs(d_loss - g_loss) > margin:
        while abs(d_loss - g_loss) > margin:
            d_loss, done = d_repeats.pop(0), done + 1
            if d_loss < g_loss:
                break
    elif d_loss < g_loss and abs(d_loss - g_loss) > margin:
        while abs(d_loss - g_loss) > margin:
            g_loss, done = g_repeats.pop(0), done + 1
            if g_loss < d_loss:
                break
    return done


@pytest.mark.parametrize(
    "d_loss, g_loss, d_repeats, g_repeats",
    [
        (0.70, 0.69, [], []),  # within the margin: no repeat
        (1.50, 0.50, [1.2, 0.9, 0.55], []),  # D behind: repeats until the gap is within 0.10
        (1.50, 0.50, [1.2, 0.3], []),  # D overtakes G: stops at once
        (0.40, 2.00, [], [1.5, 0.2]),  # G behind, overtakes on its second repeat
        (0.40, 2.00, [], [1.9] * 12),  # never closes: stops at the cap (10)
    ],
)
def test_margin_loop_repeats_as_the_source_and_stops_at_the_cap(d_loss, g_loss, d_repeats, g_repeats):
    feed = {"d": tf.constant(d_repeats + [0.0] * 12), "g": tf.constant(g_repeats + [0.0] * 12)}
    index = {"d": tf.Variable(0), "g": tf.Variable(0)}

    def next_loss(side):
        value = feed[side][index[side]]
        with tf.control_dependencies([value]):
            index[side].assign_add(1)
        return tf.identity(value)

    repeats, side = regimes.margin_loop(
        tf.constant(d_loss), tf.constant(g_loss), 0.10, 10, lambda: next_loss("d"), lambda: next_loss("g")
    )
    assert int(repeats) == min(10, source_margin(d_loss, g_loss, d_repeats + [0.0] * 12, g_repeats + [0.0] * 12))
    assert int(side) == (0 if abs(d_loss - g_loss) <= 0.10 else (1 if g_loss < d_loss else -1))


def test_monitor_compares_with_the_previous_g_loss_and_always_updates_at_the_first_step():
    allows = lambda d, previous, step: bool(regimes.monitor_allows_d(d, previous, step, 0.8))  # noqa: E731
    assert allows(0.1, 10.0, tf.constant(0, tf.int64))  # training_monitoring.py: iters == 0 always steps
    assert not allows(0.7, 1.0, tf.constant(5, tf.int64)) and allows(0.9, 1.0, tf.constant(5, tf.int64))
