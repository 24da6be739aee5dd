"""Batch normalisation as one fused kernel, forward and backward.

Keras 3's `BatchNormalization` builds its training-mode pass from separate ops: it
casts bfloat16 inputs to float32, takes the moments (Mean, SquaredDifference), and
normalises with a chain of Sub, Mul and AddV2, whose gradient adds Sum and Tile for
the broadcasts. In a profile of the DCGAN step at batch 64 in bfloat16 (`python
bench/profile_step.py --model dcgan --batch_size 64 --precision mixed_bfloat16`) the rows
of those op types and the casts were 18% of the op time (not all of it batch norm's). TensorFlow's `FusedBatchNormV3`
(oneDNN's batch normalisation on the CPU, cuDNN's on a GPU) does the same in one kernel
each way, with bfloat16 input and float32 statistics. Timed in one process
(`python -m experiments.step_change --change fused_batch_norm`, BENCHMARKS.md), the whole
step in bfloat16 ran 1.15x faster for the DCGAN at batch 64 and for `fast` at batch 8 and
1.10x for `fast` at 64; in float32 it was 1.03x and 0.95x, so float32 layers keep Keras'
computation.

`BatchNormalization` here is Keras' layer with the same variables and the same maths:
its moving variance uses the batch's own (biased) variance, as Keras' does (the fused
kernel returns the Bessel-corrected one, which is undone), and its epsilon is raised to
the kernel's least, 1.001e-5, where it is smaller (PyTorch's and the tutorial's 1e-5:
a difference of 1e-8 in the denominator). Where the fused kernel is not used (float32,
masks, inputs not of rank 4 with channels last, renorm, synchronised statistics) it calls
Keras' own; without a scale or an offset it passes the kernel ones or zeros. Named as Keras' class on purpose, as in
`matmul_grad`: a `.keras` file stores a layer list's weights under the snake-cased class
names.
"""

from __future__ import annotations

import keras
import tensorflow as tf

PACKAGE = "illustration_gan"


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's fused kernel (module docstring)."""

    def _fused_applies(self, inputs, mask) -> bool:
        return (
            self.compute_dtype != "float32" and mask is None and len(inputs.shape) == 4 and self.axis in (-1, 3)
            and not self.renorm and not self.synchronized
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
            variance = variance * (count - 1.0) / count  # the kernel's is Bessel-corrected; Keras' is not
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, is_training=False,
            )
        return tf.cast(outputs, self.compute_dtype)
