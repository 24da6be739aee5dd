"""Is `fast`'s resize-convolution faster computed on the small map? (issue 23; not adopted)

  python -m experiments.subpixel_resize_conv [--batch_size 8] [--rounds 5]

G's resize-convolution (nearest 2x upsampling, then a 3x3 "same" convolution; Odena et al.
2016) reads only 2x2 distinct input pixels per output pixel, so each of the four output
phases is a 2x2 convolution of the small map with a kernel that sums rows and columns of the
3x3 kernel, and `depth_to_space` interleaves them (the sub-pixel view of Shi et al. 2016,
arXiv:1609.07009): the same function with 16 instead of 36 multiply-adds per input pixel and
channel pair. This script checks that equality and times forward plus both gradients at each
of `fast`'s generator levels, three ways: Keras' two layers (upsample, convolve), the phases as
one 2x2 convolution with 4x the outputs (then sliced), and as four 2x2 convolutions with
explicit padding. Equality is checked in float32; timing in --dtype. Alternating rounds in
one process; medians.
"""

from __future__ import annotations

import argparse

import numpy as np
import tensorflow as tf

from experiments.conv_shapes import median_ms

# fast's generator levels at 64 px: (input map, input channels, output channels).
LEVELS = [(4, 256, 128), (8, 128, 64), (16, 64, 32), (32, 32, 3)]
# Phase a of an output row reads input rows (i-1, i) for a = 0, (i, i+1) for a = 1; each tap
# sums these rows of the 3x3 kernel. Columns alike.
TAPS = np.array([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], np.float32)  # (phase, tap, kernel row)
MIX = np.einsum("atr,bsc->tsabrc", TAPS, TAPS).reshape(16, 9)


def phase_kernels(kernel):
    """(3, 3, in, out) -> (tap row, tap column, phase row, phase column, in, out)."""
    _, _, c_in, c_out = kernel.shape
    return tf.reshape(tf.matmul(tf.constant(MIX, kernel.dtype), tf.reshape(kernel, (9, c_in * c_out))), (2, 2, 2, 2, c_in, c_out))


def keras_layers(x, kernel):
    return tf.nn.conv2d(tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2), kernel, 1, "SAME")


def one_conv(x, kernel):
    h, w, c_in, c_out = x.shape[1], x.shape[2], x.shape[3], kernel.shape[-1]
    phases = tf.reshape(tf.transpose(phase_kernels(kernel), (0, 1, 4, 2, 3, 5)), (2, 2, c_in, 4 * c_out))
    y = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), phases, 1, "VALID")
    parts = [y[:, a : a + h, b : b + w, (2 * a + b) * c_out : (2 * a + b + 1) * c_out] for a in (0, 1) for b in (0, 1)]
    return tf.nn.depth_to_space(tf.concat(parts, axis=-1), 2)


def four_convs(x, kernel):
    phases = phase_kernels(kernel)
    parts = [tf.nn.conv2d(x, phases[:, :, a, b], 1, [[0, 0], [1 - a, a], [1 - b, b], [0, 0]]) for a in (0, 1) for b in (0, 1)]
    return tf.nn.depth_to_space(tf.concat(parts, axis=-1), 2)


def train_step(fn):
    @tf.function
    def step(x, kernel):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = fn(x, kernel)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [x, kernel])

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    ways = {"Keras' layers": keras_layers, "one 2x2 conv": one_conv, "four 2x2 convs": four_convs}
    print(f"| level (batch {args.batch_size}, {args.dtype}) | " + " ms | ".join(ways) + " ms |")
    print("| --- |" + " --- |" * len(ways))
    for size, c_in, c_out in LEVELS:
        x, kernel = tf.random.normal((args.batch_size, size, size, c_in)), tf.random.normal((3, 3, c_in, c_out))
        reference = keras_layers(x, kernel)
        for fn in ways.values():
            np.testing.assert_allclose(fn(x, kernel).numpy(), reference.numpy(), rtol=1e-4, atol=1e-3)
        x, kernel = tf.cast(x, args.dtype), tf.cast(kernel, args.dtype)
        ms = median_ms([train_step(fn) for fn in ways.values()], (x, kernel), args.rounds, args.calls)
        cells = " | ".join(f"{t:.2f}" for t in ms)
        print(f"| {size}x{size}x{c_in} -> {2 * size}x{2 * size}x{c_out} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
