"""The optimisers of the sources: Adam (every source but WGAN) and RMSprop (WGAN), and Adam's
update as one fused kernel per variable.

Keras 3's Adam (keras/src/optimizers/adam.py, `update_step`) writes the update as about a dozen
small ops per variable: casts, powers, the two moment updates, a square root and a division.
At batch 8 the `fast` preset's float32 profile (bench/profile_step.py, BENCHMARKS.md) spent about
7% of its op time there (about 10 of 133 ms a step). TensorFlow's `ResourceApplyAdam` kernel computes the same update,

    m += (g - m)(1 - beta1);  v += (g^2 - v)(1 - beta2)
    var -= lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon),

in one op (Kingma & Ba, 2015, section 2, with epsilon outside the bias correction, which is
also Keras' formula), so `FusedAdam` changes the op count, not the arithmetic (tested against
Keras' Adam, also under a two-replica MirroredStrategy).

`PyTorchRMSprop` is RMSprop as PyTorch's `torch.optim.RMSprop` computes it, which the Pokemon GAN's
WGAN ran (Edouard99/GAN Train.ipynb, cell "Model": `optim.RMSprop(..., lr=lr_wgan)`, so alpha 0.99,
eps 1e-8): v = alpha v + (1 - alpha) g^2; var -= lr g / (sqrt(v) + eps). Keras' RMSprop puts epsilon
under the root, lr g / sqrt(v + eps). For a steady gradient g (v -> g^2) PyTorch's step is about lr
while Keras' is lr |g| / sqrt(g^2 + eps): 0.71 lr at |g| = 1e-4, 0.1 lr at 1e-5, so Keras moves the
clipped critic's small-gradient weights less.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _handle(variable):
    """The resource an update writes. Inside `strategy.extended.update` a distributed variable's
    handle is the copy of the replica being updated (tested with two replicas)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


@keras.saving.register_keras_serializable("illustration_gan")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam with each variable's update done by TensorFlow's `ResourceApplyAdam`."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype),
        )


@keras.saving.register_keras_serializable("illustration_gan")
class PyTorchRMSprop(keras.optimizers.RMSprop):
    """Keras' RMSprop (no momentum, not centred) with PyTorch's epsilon: lr g / (sqrt(v) + eps)."""

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum > 0 or self.centered:
            raise ValueError("PyTorchRMSprop implements the plain form only (no momentum, not centred)")
        lr = keras.ops.cast(learning_rate, variable.dtype)
        gradient = keras.ops.cast(gradient, variable.dtype)
        velocity = self._velocities[self._get_variable_index(variable)]
        self.assign(velocity, self.rho * velocity + (1 - self.rho) * keras.ops.square(gradient))
        self.assign_sub(variable, lr * gradient / (keras.ops.sqrt(velocity) + self.epsilon))


def make_optimizer(kind: str, learning_rate: float, training, precision: str):
    t = training
    if kind == "adam":
        optimizer = FusedAdam(learning_rate, beta_1=t.beta1, beta_2=t.beta2, epsilon=t.epsilon)
    elif kind == "rmsprop":
        optimizer = keras.optimizers.RMSprop(learning_rate, rho=t.rmsprop_rho, epsilon=t.epsilon)
    elif kind == "rmsprop_pytorch":
        optimizer = PyTorchRMSprop(learning_rate, rho=t.rmsprop_rho, epsilon=t.epsilon)
    else:
        raise ValueError(f"unknown optimizer {kind!r}")
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
