"""Convolutions whose kernel gradient is one matrix product, for the small maps where oneDNN's is slow.

On the Intel Xeon with AMX this project runs on, oneDNN's bfloat16 kernel-gradient
convolution (`brgconv_bwd_w`) is the slowest part of a step at small maps: in a profile of
`fast` at batch 8 (`ONEDNN_VERBOSE=1 python bench/profile_step.py --model fast --batch_size 8
--precision mixed_bfloat16`) the kernel gradient of D's last convolution (8x8x128 -> 4x4x256,
batch 16) took 11.8 ms a call against 2.0 ms for its forward pass, 18% of all convolution
time (one core, beside a training run) (docs/experiments.md, "Step speed and bfloat16"). The same gradient is a matrix product:
with X the k x k patches of the padded input, one row per output position, and dY the output
gradient, one row per output position, dK = X^T dY. The patches are a few unit-stride slices
of the padded map cut into stride x stride cells (`patch_columns`), and the product runs on
oneDNN's AMX matmul.

`Conv2D` and `Conv2DTranspose` here are Keras' layers with the same variables,
forward pass and input gradient (`tf.nn.conv2d` and its transposes); only the kernel gradient
is computed this way, and only when the layer computes in bfloat16. `python -m
experiments.conv_shapes --kernel_grad` measured where it pays (docs/experiments.md): for 4x4
stride-2 kernels in bfloat16 at maps of at most `MATMUL_GRAD_MAX_MAP` pixels on a side (the
map the patches are cut from), 1.2-5.4x faster; at larger maps, in float32 and for 3x3
stride-1 kernels it was slower or no faster, so float32 layers keep oneDNN's gradient and the
networks use these layers only at those maps. Only "same" padding, one dilation, channels-last
and kernel sizes divisible by the stride are supported.
"""

from __future__ import annotations

import keras
import tensorflow as tf

PACKAGE = "illustration_gan"
MATMUL_GRAD_MAX_MAP = 16  # largest map (pixels on a side) whose kernel gradient is a matmul


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding (before, after) of one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def patch_columns(x: tf.Tensor, kernel: int, stride: int) -> tf.Tensor:
    """The k x k patches a "SAME" convolution of `x` reads, one row per output position.

    The padded map is cut into stride x stride cells (`space_to_depth`), so each output
    position reads (k / stride)^2 whole neighbouring cells: unit-stride slices, which are fast,
    where k * k strided slices measured 5-10x slower. Columns are ordered (cell row, cell
    column, row in cell, column in cell, channel); `kernel_gradient` reorders to match.
    """
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = -(-h // stride), -(-w // stride)
    (top, bottom), (left, right) = _same_padding(h, kernel, stride), _same_padding(w, kernel, stride)
    bottom += -(h + top + bottom) % stride  # whole cells; the extra rows are never read
    right += -(w + left + right) % stride
    cells = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    if stride > 1:
        cells = tf.nn.space_to_depth(cells, stride)
    span = kernel // stride
    slices = [cells[:, a : a + out_h, b : b + out_w, :] for a in range(span) for b in range(span)]
    return tf.reshape(tf.concat(slices, axis=-1), (-1, kernel * kernel * c))


def kernel_gradient(inputs: tf.Tensor, out_grad: tf.Tensor, kernel_shape, stride: int) -> tf.Tensor:
    """dK of y = conv2d(inputs, K, stride, "SAME") given dy = `out_grad`, as one matmul."""
    k, _, c, out = kernel_shape
    span = k // stride
    columns = patch_columns(inputs, k, stride)
    grad = tf.matmul(columns, tf.reshape(out_grad, (-1, out)), transpose_a=True)
    # (cell row a, cell column b, p, q) -> kernel row a * stride + p, column b * stride + q.
    grad = tf.transpose(tf.reshape(grad, (span, span, stride, stride, c, out)), (0, 2, 1, 3, 4, 5))
    return tf.reshape(grad, kernel_shape)


def conv2d(x: tf.Tensor, kernel: tf.Tensor, stride: int) -> tf.Tensor:
    """tf.nn.conv2d(x, kernel, stride, "SAME"), with the kernel gradient of `kernel_gradient`."""

    @tf.custom_gradient
    def convolve(x, kernel):
        def grad(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, strides=[1, stride, stride, 1], padding="SAME"
            )
            return dx, kernel_gradient(x, dy, kernel.shape, stride)

        return tf.nn.conv2d(x, kernel, stride, "SAME"), grad

    return convolve(x, kernel)


def conv2d_transpose(x: tf.Tensor, kernel: tf.Tensor, stride: int) -> tf.Tensor:
    """tf.nn.conv2d_transpose(x, kernel, ..., "SAME") to `stride` times the map; the kernel
    gradient is that of the convolution it transposes, with the roles of x and dy swapped."""
    n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    output_shape = tf.stack([n, h * stride, w * stride, kernel.shape[2]])

    @tf.custom_gradient
    def convolve(x, kernel):
        def grad(dy):
            return tf.nn.conv2d(dy, kernel, stride, "SAME"), kernel_gradient(dy, x, kernel.shape, stride)

        return tf.nn.conv2d_transpose(x, kernel, output_shape, stride, "SAME"), grad

    return convolve(x, kernel)


class _MatmulGrad:
    """Refuses what the custom gradient does not cover."""

    def _check(self):
        if self.padding != "same" or self.data_format != "channels_last" or tuple(self.dilation_rate) != (1, 1):
            raise ValueError(f"matmul_grad.{type(self).__name__} supports padding 'same', channels_last and no dilation")
        if self.strides[0] != self.strides[1] or self.kernel_size[0] != self.kernel_size[1]:
            raise ValueError(f"matmul_grad.{type(self).__name__} needs square kernels and strides")
        if self.kernel_size[0] % self.strides[0]:
            raise ValueError(f"matmul_grad.{type(self).__name__} needs a kernel size divisible by the stride")


@keras.saving.register_keras_serializable(package=PACKAGE)
class Conv2D(_MatmulGrad, keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose kernel gradient is one matmul in bfloat16 (see the module docstring).

    Named as Keras' class on purpose: a `.keras` file stores a layer list's weights under the
    snake-cased class names (`conv2d_1`), so files saved with either class load into the other.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._check()

    def convolution_op(self, inputs, kernel):
        if self.compute_dtype != "bfloat16":
            return super().convolution_op(inputs, kernel)
        return conv2d(inputs, tf.convert_to_tensor(kernel), self.strides[0])


@keras.saving.register_keras_serializable(package=PACKAGE)
class Conv2DTranspose(_MatmulGrad, keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` (no output padding) whose kernel gradient is one matmul in
    bfloat16; named as Keras' class for the reason given on `Conv2D`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._check()
        if self.output_padding is not None:
            raise ValueError("matmul_grad.Conv2DTranspose has no output_padding")

    def call(self, inputs):
        if self.compute_dtype != "bfloat16":
            return super().call(inputs)
        outputs = conv2d_transpose(inputs, tf.convert_to_tensor(self.kernel), self.strides[0])
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs if self.activation is None else self.activation(outputs)
