"""Custom layers of the IllustrationGAN family, registered for `.keras` saving.

- `BilinearUpsample2x`: a fixed (untrained) 2x bilinear upsampling, the
  IllustrationGAN generator's replacement for transposed convolutions
  (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").
- `MinibatchDiscrimination`: Salimans et al. 2016, "Improved Techniques for
  Training GANs", section 3.2, as used by IllustrationGAN's discriminator.
- `MinibatchDiscrimination2D`: the Pokemon GAN's convolutional variant of it.
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
    Returns o (N, B); callers concatenate it with their own features. With `count_self`, the sum
    also takes j = i (adding 1), as IllustrationGAN's custom_ops.py does (lines 122-127 at aecb729).
    """

    def __init__(self, num_kernels: int = 100, kernel_dims: int = 5, use_bias: bool = False, xavier: bool = False,
                 count_self: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_kernels, self.kernel_dims = num_kernels, kernel_dims
        self.use_bias, self.xavier, self.count_self = use_bias, xavier, count_self

    def build(self, input_shape):
        init = keras.initializers.GlorotUniform() if self.xavier else keras.initializers.RandomNormal(stddev=0.02)
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], self.num_kernels * self.kernel_dims), initializer=init
        )
        self.bias = self.add_weight(name="bias", shape=(self.num_kernels,), initializer="zeros") if self.use_bias else None

    def call(self, features):
        m = ops.reshape(ops.matmul(features, self.kernel), (-1, self.num_kernels, self.kernel_dims))
        l1 = ops.sum(ops.abs(m[:, None, :, :] - m[None, :, :, :]), axis=-1)  # (N, N, B)
        out = ops.sum(ops.exp(-l1), axis=1)
        out = out if self.count_self else out - 1.0  # exclude j == i, where exp(-0) = 1
        return out if self.bias is None else out + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_kernels)

    def get_config(self):
        return {**super().get_config(), "num_kernels": self.num_kernels, "kernel_dims": self.kernel_dims,
                "use_bias": self.use_bias, "xavier": self.xavier, "count_self": self.count_self}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MinibatchDiscrimination2D(keras.layers.Layer):
    """The Pokemon GAN's minibatch discrimination on a feature map (Edouard99/GAN Models/gan64.py,
    class MinibatchDiscrimination2d, lines 4-45), placed after D's first block.

    A bias-free `reduction` x `reduction` convolution with that stride maps the (N, H, W, C) input
    to 3 channels on a t x t grid; the flattened (N, 3 t t) is multiplied by a learned T into
    (N, out_filters t t, intermediate); o_i = sum over j != i of exp(-||M_i - M_j||_L1) per row,
    reshaped to (N, t, t, out_filters) and brought back to H x W by a bias-free transposed
    convolution of the same size and stride; the result is concatenated to the input's channels.
    T is initialised as torch.nn.init.xavier_uniform_ does for a 3-d tensor; the two convolutions
    N(0, 0.02), as the source's weights_init does for every Conv module.
    """

    def __init__(self, out_filters: int = 2, intermediate: int = 16, reduction: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.out_filters, self.intermediate, self.reduction = out_filters, intermediate, reduction
        normal = keras.initializers.RandomNormal(stddev=0.02)
        self.reduce = keras.layers.Conv2D(3, reduction, reduction, "valid", use_bias=False, kernel_initializer=normal)
        self.expand = keras.layers.Conv2DTranspose(
            out_filters, reduction, reduction, "valid", use_bias=False, kernel_initializer=normal
        )

    def build(self, input_shape):
        self.grid = (input_shape[1] - self.reduction) // self.reduction + 1
        cells = self.grid * self.grid
        fan_in, fan_out = self.out_filters * cells * self.intermediate, 3 * cells * self.intermediate
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        self.T = self.add_weight(
            name="T", shape=(3 * cells, self.out_filters * cells * self.intermediate),
            initializer=keras.initializers.RandomUniform(-bound, bound),
        )
        self.reduce.build(input_shape)
        self.expand.build((input_shape[0], self.grid, self.grid, self.out_filters))

    def call(self, x):
        cells = self.grid * self.grid
        reduced = ops.reshape(self.reduce(x), (-1, 3 * cells))
        m = ops.reshape(ops.matmul(ops.cast(reduced, "float32"), ops.cast(self.T, "float32")),
                        (-1, self.out_filters * cells, self.intermediate))
        l1 = ops.sum(ops.abs(m[:, None] - m[None, :]), axis=-1)  # (N, N, out t t)
        closeness = ops.sum(ops.exp(-l1), axis=1) - 1.0  # exclude j == i
        grid = ops.reshape(ops.cast(closeness, x.dtype), (-1, self.grid, self.grid, self.out_filters))
        return ops.concatenate([x, self.expand(grid)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.out_filters)

    def get_config(self):
        return {**super().get_config(), "out_filters": self.out_filters, "intermediate": self.intermediate,
                "reduction": self.reduction}


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
