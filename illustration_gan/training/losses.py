"""GAN losses as small pure functions, named as in TF-GAN (tensorflow/gan losses_impl.py).

Every function returns per-example losses (shape [N]); the training loop averages
them over the global batch with `tf.nn.compute_average_loss`, which keeps the
gradient scale right under a distribution strategy.
"""

from __future__ import annotations

import tensorflow as tf

SMOOTH_REAL, SMOOTH_FAKE = 0.95, 0.05  # target * 0.9 + 0.05, as in the Pokemon GAN project


def _bce(logits, target):
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.broadcast_to(target, tf.shape(logits)), logits=logits)


def minimax_discriminator_loss(real_logits, fake_logits, label_smoothing=False, swap_labels=False):
    """-log D(x) - log(1 - D(G(z))) (Goodfellow et al. 2014), per example.

    `label_smoothing` uses targets 0.95 / 0.05; `swap_labels` (a scalar bool tensor)
    trains D with real and fake targets exchanged, the noisy-label trick.
    """
    real_target = SMOOTH_REAL if label_smoothing else 1.0
    fake_target = SMOOTH_FAKE if label_smoothing else 0.0
    swap = tf.cast(swap_labels, tf.float32)
    real_t = real_target * (1.0 - swap) + fake_target * swap
    fake_t = fake_target * (1.0 - swap) + real_target * swap
    return _bce(real_logits, real_t) + _bce(fake_logits, fake_t)


def non_saturating_generator_loss(fake_logits, label_smoothing=False):
    """-log D(G(z)) (Goodfellow et al. 2014, the "modified" generator loss), per example."""
    return _bce(fake_logits, SMOOTH_REAL if label_smoothing else 1.0)


def wasserstein_discriminator_loss(real_scores, fake_scores):
    """Critic loss D(G(z)) - D(x) (Arjovsky et al. 2017), per example."""
    return fake_scores - real_scores


def wasserstein_generator_loss(fake_scores):
    """-D(G(z)), per example."""
    return -fake_scores


def hinge_discriminator_loss(real_scores, fake_scores):
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) (Lim & Ye 2017, "Geometric GAN"; SNGAN, SAGAN), per example."""
    return tf.nn.relu(1.0 - real_scores) + tf.nn.relu(1.0 + fake_scores)


def hinge_generator_loss(fake_scores):
    """-D(G(z)), per example: the generator side of the hinge loss (as in SAGAN and BigGAN)."""
    return -fake_scores


def scores_and_input_gradients(discriminator, images, training=True):
    """D's scores on `images` and their gradients with respect to the images (for penalties)."""
    with tf.GradientTape() as tape:
        tape.watch(images)
        scores = discriminator(images, training=training)
    return scores, tape.gradient(scores, images)


def wasserstein_gradient_penalty(critic, real, fake, seed, training=True):
    """(||grad D(x_hat)||_2 - 1)^2 on random interpolates (Gulrajani et al. 2017), per example."""
    alpha = tf.random.stateless_uniform([tf.shape(real)[0], 1, 1, 1], seed, dtype=real.dtype)
    _, grads = scores_and_input_gradients(critic, real + alpha * (fake - real), training)
    norms = tf.sqrt(tf.reduce_sum(tf.square(tf.cast(grads, tf.float32)), axis=[1, 2, 3]) + 1e-12)
    return tf.square(norms - 1.0)


def r1_penalty(real_gradients):
    """||grad_x D(x)||^2 at real images (Mescheder et al. 2018, "Which Training Methods for GANs
    do actually Converge?"), per example, from `scores_and_input_gradients`; D's loss adds
    gamma / 2 times it."""
    return tf.reduce_sum(tf.square(tf.cast(real_gradients, tf.float32)), axis=[1, 2, 3])


def z_prediction_loss(z, predicted_z):
    """Mean squared error between z and the z-predictor's estimate, per example (IllustrationGAN)."""
    return tf.reduce_mean(tf.square(tf.cast(predicted_z, tf.float32) - tf.cast(z, tf.float32)), axis=-1)
