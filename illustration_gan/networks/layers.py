"""Custom layers of the IllustrationGAN family, registered for `.keras` saving.

- `BilinearUpsample2x`: a fixed (untrained) 2x bilinear upsampling, the
  IllustrationGAN generator's replacement for transposed convolutions
  (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").
- `MinibatchDiscrimination`: Salimans et al. 2016, "Improved Techniques for
  Training GANs", section 3.2, as used by IllustrationGAN's discriminator.
- `SpectralNormConv2D`, `SpectralNormDense`: spectral normalisation of a
  discriminator's weights (Miyato et al. 2018, "Spectral Normalization for GANs").
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "illustration_gan"


@keras.saving.register_keras_serializable(package=PACKAGE)
class BilinearUpsample2x(keras.layers.Layer):
    """Doubles height and width by bilinear interpolation; has no weights.

    Uses half-pixel centres (the modern `tf.image.resize` convention), so a
    constant image stays constant and the output is not shifted.
    """

    def call(self, x):
        height, width = x.shape[1], x.shape[2]
        return ops.image.resize(x, (2 * height, 2 * width), interpolation="bilinear", antialias=False)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, c)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MinibatchDiscrimination(keras.layers.Layer):
    """Features telling the discriminator how close each sample is to the rest of its batch.

    For input f (N, A) and a learned tensor T (A, B*C): M = f T reshaped to (N, B, C);
    c_b(i, j) = exp(-||M_i,b - M_j,b||_L1); o(i)_b = sum over j != i of c_b(i, j).
    Returns o (N, B); callers concatenate it with their own features.
    """

    def __init__(self, num_kernels: int = 100, kernel_dims: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.num_kernels = num_kernels
        self.kernel_dims = kernel_dims

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.num_kernels * self.kernel_dims),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )

    def call(self, features):
        m = ops.reshape(ops.matmul(features, self.kernel), (-1, self.num_kernels, self.kernel_dims))
        l1 = ops.sum(ops.abs(m[:, None, :, :] - m[None, :, :, :]), axis=-1)  # (N, N, B)
        return ops.sum(ops.exp(-l1), axis=1) - 1.0  # exclude j == i, where exp(-0) = 1

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_kernels)

    def get_config(self):
        return {**super().get_config(), "num_kernels": self.num_kernels, "kernel_dims": self.kernel_dims}


class _SpectralNorm:
    """Mixin computing with kernel / sigma(kernel) (Miyato et al. 2018, arXiv:1802.05957).

    sigma is the largest singular value of the kernel reshaped to (fan_in, out),
    estimated by one power iteration per training call from a persistent vector u.
    Unlike `keras.layers.SpectralNormalization`, which overwrites the kernel
    variable with the normalised kernel, the variable keeps the raw weights and the
    gradient flows through sigma, as in the paper's code.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self.sn_u = self.add_weight(
            name="sn_u",
            shape=(1, self.kernel.shape[-1]),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
        )

    # Conv2D and Dense save only their kernel and bias; the generic Layer methods save every variable.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def normalized_kernel(self, training):
        kernel = self.kernel
        w = ops.reshape(kernel, (-1, kernel.shape[-1]))
        u = ops.cast(self.sn_u, w.dtype)
        v = ops.stop_gradient(_unit(ops.matmul(u, ops.transpose(w))))
        u = ops.stop_gradient(_unit(ops.matmul(v, w)))
        if training:
            self.sn_u.assign(ops.cast(u, self.sn_u.dtype))
        sigma = ops.sum(ops.matmul(v, w) * u)
        return kernel / sigma


def _unit(x):
    return x / (ops.sqrt(ops.sum(ops.square(x))) + 1e-12)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpectralNormConv2D(_SpectralNorm, keras.layers.Conv2D):
    """`Conv2D` with a spectrally normalised kernel (channels_last)."""

    def call(self, inputs, training=False):
        outputs = self.convolution_op(inputs, self.normalized_kernel(training))
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpectralNormDense(_SpectralNorm, keras.layers.Dense):
    """`Dense` with a spectrally normalised kernel."""

    def call(self, inputs, training=False):
        outputs = ops.matmul(inputs, self.normalized_kernel(training))
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs
