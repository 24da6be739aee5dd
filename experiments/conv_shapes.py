"""Why the DCGAN step is slower than its FLOPs say: the 4x4 stride-2 convolutions, one shape at a time.

The DCGAN tutorial networks (Radford et al. 2015) halve the map and double the channels at
each level, so every level costs the same FLOPs (64 x 16 x 16 x 128 x 64 x 16 multiply-adds at
32 -> 16, and so on). This times each of D's convolution shapes at batch 64 in bfloat16 (a
float32 kernel cast in the graph, as Keras' mixed precision does): forward, gradient to the
input and gradient to the kernel, as `tf.nn.conv2d` (oneDNN's kernels), against the same
convolution written as one matrix product over space-to-depth cells (pad 1, 2x2 cells,
the four neighbouring cells side by side, the kernel reordered to match) and as a 2x2
stride-1 convolution over those cells, alternating the
variants within one process and taking the median.

    python -m experiments.conv_shapes [--rounds 7]

With --kernel_grad it times only the kernel gradient, the part that is slow at small maps,
for every convolution of `fast` (D at batch 16: reals and fakes in one call; G's 3x3 resize
convolutions at batch 8) and of `dcgan` (batch 64; G's transposed convolutions as the
convolution they transpose), in float32 and bfloat16: oneDNN's `Conv2DBackpropFilter` against
`networks.matmul_grad.kernel_gradient` (one matmul over the patches). This chose
`matmul_grad.MATMUL_GRAD_MAX_MAP`.

    python -m experiments.conv_shapes --kernel_grad [--rounds 9]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

# (network, batch, input map, input channels, output channels, kernel, stride) of each kernel gradient.
KERNEL_GRAD_SHAPES = (
    [("fast D", 16, 64 >> i, 3 if i == 0 else 32 << (i - 1), 32 << i, 4, 2) for i in range(4)]
    + [("fast G", 8, 8 << i, 256 >> i, 128 >> i if i < 3 else 3, 3, 1) for i in range(4)]
    + [("dcgan D/G", 64, 64 >> i, 3 if i == 0 else 64 << (i - 1), 64 << i, 4, 2) for i in range(4)]
)
SHAPES = (((64, 64, 64, 3), 64), ((64, 32, 32, 64), 128), ((64, 16, 16, 128), 256), ((64, 8, 8, 256), 512))


def conv_as_matmul(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """tf.nn.conv2d(x, kernel, 2, "SAME") for a 4x4 kernel and an even map, as one matmul."""
    n, h, w, c = x.shape
    out = kernel.shape[-1]
    cells = tf.nn.space_to_depth(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 2)
    ho, wo = h // 2, w // 2
    columns = tf.concat([cells[:, a : a + ho, b : b + wo, :] for a in (0, 1) for b in (0, 1)], axis=-1)
    # kernel row 2a + p, column 2b + q meets cell (a, b), position (p, q) within it.
    reordered = tf.reshape(tf.transpose(tf.reshape(kernel, (2, 2, 2, 2, c, out)), (0, 2, 1, 3, 4, 5)), (16 * c, out))
    return tf.reshape(tf.matmul(tf.reshape(columns, (n * ho * wo, 16 * c)), reordered), (n, ho, wo, out))


def conv_on_cells(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """The same convolution as a 2x2 stride-1 convolution over the space-to-depth cells."""
    c, out = kernel.shape[2], kernel.shape[3]
    cells = tf.nn.space_to_depth(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 2)
    reordered = tf.reshape(tf.transpose(tf.reshape(kernel, (2, 2, 2, 2, c, out)), (0, 2, 1, 3, 4, 5)), (2, 2, 4 * c, out))
    return tf.nn.conv2d(cells, reordered, 1, "VALID")


def timed_step(convolve, kernel: tf.Variable):
    @tf.function
    def step(x32):
        with tf.GradientTape() as tape:
            tape.watch(x32)
            y = convolve(tf.cast(x32, tf.bfloat16), tf.cast(kernel, tf.bfloat16))
            loss = tf.reduce_sum(tf.square(tf.cast(y, tf.float32)))
        return tape.gradient(loss, [x32, kernel])

    return step


def median_ms(functions, args, rounds: int, repeats: int = 5) -> list[float]:
    """Median wall time of each function on `args`, the functions alternating within each round."""
    for function in functions:
        function(*args), function(*args)
    times = [[] for _ in functions]
    for _ in range(rounds):
        for function, spent in zip(functions, times):
            started = time.perf_counter()
            for _ in range(repeats):
                out = function(*args)
            tf.nest.flatten(out)[0].numpy()
            spent.append((time.perf_counter() - started) / repeats)
    return [1e3 * float(np.median(t)) for t in times]


def kernel_grad_table(rounds: int) -> None:
    from illustration_gan.networks.matmul_grad import kernel_gradient

    rng = np.random.default_rng(0)
    print("| network | batch | kernel gradient of | dtype | Conv2DBackpropFilter ms | one matmul ms | speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for network, batch, size, channels, out, k, stride in KERNEL_GRAD_SHAPES:
        for dtype in (tf.float32, tf.bfloat16):
            x = tf.constant(rng.normal(size=(batch, size, size, channels)), dtype)
            dy = tf.constant(rng.normal(size=(batch, -(-size // stride), -(-size // stride), out)), dtype)
            shape = (k, k, channels, out)
            direct = tf.function(lambda x, dy, shape=shape, stride=stride: tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=shape, out_backprop=dy, strides=[1, stride, stride, 1], padding="SAME"))
            matmul = tf.function(lambda x, dy, shape=shape, stride=stride: kernel_gradient(x, dy, shape, stride))
            ms = median_ms((direct, matmul), (x, dy), rounds)
            name = f"{size}x{size}x{channels} -> {out}, {k}x{k} stride {stride}"
            print(f"| {network} | {batch} | {name} | {dtype.name} | {ms[0]:.2f} | {ms[1]:.2f} | {ms[0] / ms[1]:.2f}x |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--kernel_grad", action="store_true", help="time only the kernel gradients (see above)")
    args = parser.parse_args()
    if args.kernel_grad:
        return kernel_grad_table(args.rounds)
    rng = np.random.default_rng(0)
    print("| D's convolution at batch 64 | GFLOP (forward and both gradients) | tf.nn.conv2d ms | as one matmul ms "
          "| as 2x2 convolution on cells ms | conv2d GFLOP/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for shape, out in SHAPES:
        x = tf.constant(rng.normal(size=shape), tf.float32)
        kernel = tf.Variable(rng.normal(size=(4, 4, shape[-1], out)).astype(np.float32) * 0.02)
        direct = lambda x, k: tf.nn.conv2d(x, k, 2, "SAME")  # noqa: E731
        variants = (direct, conv_as_matmul, conv_on_cells)
        for variant in variants[1:]:
            np.testing.assert_allclose(variant(x, kernel).numpy(), direct(x, kernel).numpy(), rtol=1e-3, atol=1e-3)
        ms = median_ms([timed_step(variant, kernel) for variant in variants], (x,), args.rounds, repeats=1)
        gflop = 3 * 2 * shape[0] * (shape[1] // 2) * (shape[2] // 2) * out * 16 * shape[3] / 1e9
        name = f"{shape[1]}x{shape[1]}x{shape[3]} -> {shape[1] // 2}x{shape[1] // 2}x{out}"
        print(f"| {name} | {gflop:.1f} | {ms[0]:.1f} | {ms[1]:.1f} | {ms[2]:.1f} | {gflop / ms[0] * 1e3:.0f} |", flush=True)


if __name__ == "__main__":
    main()
