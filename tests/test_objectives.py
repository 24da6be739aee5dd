"""illustration_gan/training/objectives.py and terms.py: each objective is its loss family; terms follow the config."""

import numpy as np
import pytest
import tensorflow as tf

from illustration_gan import config as config_lib
from illustration_gan.training import losses
from illustration_gan.training import objectives, terms

REAL, FAKE = tf.constant([2.0, -0.5, 0.25]), tf.constant([-1.0, 0.75, 3.0])


@pytest.mark.parametrize(
    "loss, d_reference, g_reference",
    [
        ("minimax", losses.minimax_discriminator_loss(REAL, FAKE), losses.non_saturating_generator_loss(FAKE)),
        ("hinge", losses.hinge_discriminator_loss(REAL, FAKE), losses.hinge_generator_loss(FAKE)),
        ("wasserstein", losses.wasserstein_discriminator_loss(REAL, FAKE), losses.wasserstein_generator_loss(FAKE)),
    ],
)
def test_each_objective_is_its_loss_family(loss, d_reference, g_reference):
    preset = "wgan" if loss == "wasserstein" else "dcgan"
    objective = objectives.make_objective(config_lib.resolve(preset, {"loss": loss}).training)
    assert objective.name == loss
    np.testing.assert_allclose(objective.discriminator_loss(REAL, FAKE, tf.constant(False)), d_reference)
    np.testing.assert_allclose(objective.generator_loss(FAKE), g_reference)
    shown = objective.display(REAL).numpy()
    # The log shows probabilities for BCE, raw scores for the others.
    np.testing.assert_allclose(shown, 1 / (1 + np.exp(-REAL.numpy())) if loss == "minimax" else REAL.numpy(), rtol=1e-6)


def test_minimax_objective_smooths_and_swaps_labels_as_configured():
    smooth = objectives.make_objective(config_lib.resolve("dcgan", {"label_smoothing": True}).training)
    np.testing.assert_allclose(
        smooth.discriminator_loss(REAL, FAKE, tf.constant(True)),
        losses.minimax_discriminator_loss(REAL, FAKE, label_smoothing=True, swap_labels=True),
    )


@pytest.mark.parametrize(
    "preset, overrides, expected",
    [
        ("fast", {}, []),
        ("fast", {"r1_gamma": 10.0}, [("r1_penalty", 5.0)]),
        ("wgan", {"gp_weight": 10.0, "clip_weights": 0.0}, [("gradient_penalty", 10.0)]),
        ("illustration", {}, []),  # the z-prediction loss has a step of its own, not a term
    ],
)
def test_terms_follow_the_config_with_their_weight(preset, overrides, expected):
    chosen = terms.make_terms(config_lib.resolve(preset, overrides))
    assert [(t.name, t.weight) for t in chosen] == expected


def test_r1_term_reads_the_input_gradients_of_the_forward_pass():
    gradients = tf.constant(np.arange(24, dtype=np.float32).reshape(2, 2, 2, 3))
    forward = terms.Forward(
        fake=tf.zeros([2, 2, 2, 3]), real=tf.zeros([2, 2, 2, 3]), real_scores=tf.zeros([2]),
        fake_scores=tf.zeros([2]), real_gradients=gradients, seed=lambda salt: tf.constant([0, salt], tf.int64),
    )
    (term,) = terms.make_terms(config_lib.resolve("fast", {"r1_gamma": 2.0}))
    assert term.needs_real_gradients
    np.testing.assert_allclose(term.per_example(forward, None), np.square(gradients.numpy()).sum(axis=(1, 2, 3)))
