"""illustration_gan/training/step.py: the alternating step against a hand-written reference, the
z-predictor's own step, the monitored rule's memory, and one trace per run."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from illustration_gan import config as config_lib
from illustration_gan.training import losses
from illustration_gan.training import GANTrainer
from illustration_gan.training.seeds import Z as Z_SALT

TINY = dict(image_size=32, g_width=4, d_width=4, z_dim=8, batch_size=8)
REAL = tf.random.stateless_uniform([8, 32, 32, 3], [1, 2], -1, 1)


def _trainer(preset="dcgan", **overrides):
    keras.utils.set_random_seed(0)  # the same initial weights for every trainer built here
    return GANTrainer(config_lib.resolve(preset, {**TINY, **overrides}), tf.distribute.get_strategy())


def _weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _one_step(trainer):
    return trainer.train_step(iter(tf.data.Dataset.from_tensors(REAL).repeat()))


def _reference_alternating_step(reference):
    """The PyTorch DCGAN tutorial's order by hand: one G forward, D's update on the reals and the
    detached fakes, then G's gradient from the updated D on the same fakes."""
    z = reference.generator.sample_latents(8, reference.seed(Z_SALT))
    mean = tf.reduce_mean
    with tf.GradientTape(persistent=True) as g_tape:
        fake = reference.generator(z, training=True)
    with tf.GradientTape() as tape:
        real_logits = reference.discriminator(REAL, training=True)
        fake_logits = reference.discriminator(tf.stop_gradient(fake), training=True)
        d_loss = mean(losses.minimax_discriminator_loss(real_logits, fake_logits))
    d_vars = reference.discriminator.trainable_variables
    reference.d_optimizer.apply(tape.gradient(d_loss, d_vars), d_vars)
    with g_tape:
        g_loss = mean(losses.non_saturating_generator_loss(reference.discriminator(fake, training=True)))
    g_vars = reference.generator.trainable_variables
    reference.g_optimizer.apply(g_tape.gradient(g_loss, g_vars), g_vars)
    return float(d_loss), float(g_loss)


@pytest.mark.parametrize("d_norm", ["batch", "none"])
def test_the_alternating_step_equals_d_then_g_against_the_updated_d(d_norm):
    # Without batch norm, D scores the reals and fakes in one call; the reference calls it twice.
    trainer, reference = _trainer(d_norm=d_norm), _trainer(d_norm=d_norm)
    assert trainer.discriminator.scores_each_image_alone == (d_norm == "none")
    metrics = _one_step(trainer)
    d_loss, g_loss = _reference_alternating_step(reference)
    np.testing.assert_allclose([float(metrics["d_loss"]), float(metrics["g_loss"])], [d_loss, g_loss], rtol=1e-5)
    for got, want in zip(_weights(trainer.discriminator) + _weights(trainer.generator),
                         _weights(reference.discriminator) + _weights(reference.generator)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # G ran forward once, as in the tutorial: its batch-norm moving statistics moved once.
    for got, want in zip(trainer.generator.non_trainable_weights, reference.generator.non_trainable_weights):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)
    # The simultaneous order gives G the gradient of the old D: G's weights differ.
    simultaneous = _trainer(update_order="simultaneous", d_norm=d_norm)
    _one_step(simultaneous)
    differences = [np.abs(a - b).max() for a, b in zip(_weights(simultaneous.generator), _weights(trainer.generator))]
    assert max(differences) > 1e-6


def test_the_z_prediction_step_trains_only_the_fc_layers_and_the_predictor():
    trainer = _trainer("illustration", fc_units=16, minibatch_kernels=4)
    trainer.g_optimizer.learning_rate.assign(0.0)  # freeze the adversarial updates
    trainer.d_optimizer.learning_rate.assign(0.0)
    before = {v.path: v.numpy().copy() for v in trainer.generator.trainable_variables}
    predictor_before = _weights(trainer.networks.z_predictor)
    discriminator_before = _weights(trainer.discriminator)
    metrics = _one_step(trainer)
    assert np.isfinite(float(metrics["zpred_loss"]))
    changed = {v.path for v in trainer.generator.trainable_variables if np.abs(before[v.path] - v.numpy()).max() > 0}
    assert changed and all("fully_connected" in path for path in changed)
    assert len(changed) == len(trainer.generator.fully_connected.trainable_variables)
    assert all(np.abs(a - b).max() > 0 for a, b in zip(predictor_before, _weights(trainer.networks.z_predictor)))
    assert all(np.array_equal(a, b) for a, b in zip(discriminator_before, _weights(trainer.discriminator)))


def test_the_z_prediction_step_runs_between_d_and_g_as_in_the_source():
    """tdrussell/IllustrationGAN train.py: D, Z, then G. G's loss of the step is measured after the
    Z step moved G's fully connected layers, so freezing the Z step changes it (and D's loss not)."""
    losses_of = {}
    for rate in (1e-2, 0.0):
        trainer = _trainer("illustration", fc_units=16, minibatch_kernels=4)
        trainer.z_prediction.optimizer.learning_rate.assign(rate)
        metrics = _one_step(trainer)
        losses_of[rate] = (float(metrics["d_loss"]), float(metrics["g_loss"]))
    assert losses_of[1e-2][0] == pytest.approx(losses_of[0.0][0], rel=1e-6)
    assert abs(losses_of[1e-2][1] - losses_of[0.0][1]) > 1e-6


def test_the_monitored_rule_remembers_this_steps_g_loss_for_the_next():
    trainer = _trainer(balance="monitor", monitor_ratio=100.0)
    iterator = iter(tf.data.Dataset.from_tensors(REAL).repeat())
    first = trainer.train_step(iterator)
    assert float(first["d_updates"]) == 1.0  # the first step always updates D
    assert float(trainer.regime.gate.previous_g_loss.numpy()) == pytest.approx(float(first["g_loss"]))
    second = trainer.train_step(iterator)
    assert float(second["d_updates"]) == 0.0  # D's loss is below 100 x the previous G loss
    assert trainer.train_step.experimental_get_tracing_count() == 1


def test_several_steps_in_one_call_equal_as_many_single_steps():
    single, several = _trainer(), _trainer()
    iterator = iter(tf.data.Dataset.from_tensors(REAL).repeat())
    metrics = [single.train_step(iterator) for _ in range(3)]
    sums, ran, last = several.train_steps(iter(tf.data.Dataset.from_tensors(REAL).repeat()), tf.constant(3))
    assert int(ran) == 3 and int(several.step.numpy()) == 3
    assert set(sums) == set(several.metric_names) == set(metrics[0])
    for name in sums:
        assert float(sums[name]) == pytest.approx(sum(float(m[name]) for m in metrics), rel=1e-4, abs=1e-5)
    assert float(last["d_loss"]) == pytest.approx(float(metrics[-1]["d_loss"]), rel=1e-4)
    for got, want in zip(_weights(several.generator), _weights(single.generator)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    several.train_steps(iterator, tf.constant(5))
    assert several.train_steps.experimental_get_tracing_count() == 1  # the count is a tensor: no retrace


@pytest.mark.parametrize("preset", ["illustration", "keras-margin", "pokemon-wgan", "fast"])
def test_every_preset_declares_the_metrics_its_step_returns(preset):
    overrides = dict(fc_units=16, minibatch_kernels=4) if preset == "illustration" else {}
    trainer = _trainer(preset, **overrides)
    sums, ran, _ = trainer.train_steps(iter(tf.data.Dataset.from_tensors(REAL).repeat()), tf.constant(2))
    assert int(ran) == 2 and set(sums) == set(trainer.metric_names)


def test_a_call_stops_after_the_first_step_with_a_non_finite_loss():
    trainer = _trainer(update_order="simultaneous")
    bad = tf.fill(REAL.shape, float("nan"))
    batches = tf.data.Dataset.from_tensor_slices(tf.stack([REAL, REAL, bad, REAL, REAL]))
    sums, ran, last = trainer.train_steps(iter(batches), tf.constant(5))
    assert int(ran) == 3 and int(trainer.step.numpy()) == 3
    assert not np.isfinite(float(last["d_loss"]))


def _adam_steps(optimizer, strategy=None):
    """Three Adam updates of a 3x2 kernel and a bias from fixed gradients; the values after each."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        variables = [keras.Variable(np.arange(6, dtype="float32").reshape(3, 2) / 7), keras.Variable([0.5, -0.5])]
        optimizer.build(variables)
    history = []
    for i in range(3):
        grads = [tf.fill([3, 2], 0.3 * (i + 1)), tf.constant([-1.0, 2.0 * i])]
        strategy.run(lambda g: optimizer.apply(g, variables), args=(grads,))
        history.append([v.numpy().copy() for v in variables])
    return history


def test_fused_adam_makes_the_update_of_keras_adam():
    from illustration_gan.training.optimizers import FusedAdam

    kwargs = dict(learning_rate=0.01, beta_1=0.5, beta_2=0.99, epsilon=1e-7)
    for fused, plain in zip(_adam_steps(FusedAdam(**kwargs)), _adam_steps(keras.optimizers.Adam(**kwargs))):
        for got, want in zip(fused, plain):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert np.abs(fused[0] - np.arange(6).reshape(3, 2) / 7).min() > 1e-3  # it did update


def test_fused_adam_updates_every_replicas_copy_under_a_mirrored_strategy():
    """In a fresh process (logical devices must be set before TensorFlow starts): two CPU replicas."""
    import subprocess
    import sys
    from pathlib import Path

    script = """
import numpy as np, tensorflow as tf, keras
cpu, = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from illustration_gan.training.optimizers import FusedAdam
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    variable = keras.Variable([1.0, 2.0])
    optimizer = FusedAdam(learning_rate=0.1)
    optimizer.build([variable])
strategy.run(lambda: optimizer.apply([tf.constant([1.0, -1.0])], [variable]))
copies = [c.numpy().tolist() for c in variable.value.values]
print(copies)
assert len(copies) == 2 and copies[0] == copies[1], copies
np.testing.assert_allclose(copies[0], [0.9, 2.1], rtol=1e-5)
"""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
