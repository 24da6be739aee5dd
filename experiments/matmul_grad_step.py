"""The whole training step with and without the matmul kernel gradients, in one process.

`networks/matmul_grad.py` takes the bfloat16 kernel gradients of the 4x4 stride-2
convolutions at maps of 16 pixels and less as one matmul. This machine's speed drifts by
tens of percent between runs of `bench/benchmark.py` (docs/experiments.md), so the step is
compared in one process: for each preset and batch, two trainers in bfloat16, one built with
`matmul_grad.MATMUL_GRAD_MAX_MAP = 0` (Keras' layers everywhere, the code before) and one as
the networks are built now, timed in alternating rounds of 2-second bursts of the loop's
several-steps calls on a fixed batch; the median round counts.

    python -m experiments.matmul_grad_step [--rounds 7] [--cases dcgan:64,fast:8,fast:64,pokemon:32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from illustration_gan import config as config_lib
from illustration_gan import training
from illustration_gan.networks import matmul_grad


def build(preset: str, batch: int, max_map: int):
    """A bfloat16 trainer of `preset` at `batch` whose networks use matmul kernel gradients up to `max_map`."""
    config = config_lib.resolve(preset, {"image_size": 64, "batch_size": batch, "precision": "mixed_bfloat16"})
    default, matmul_grad.MATMUL_GRAD_MAX_MAP = matmul_grad.MATMUL_GRAD_MAX_MAP, max_map
    try:
        trainer = training.GANTrainer(config, tf.distribute.get_strategy())
    finally:
        matmul_grad.MATMUL_GRAD_MAX_MAP = default
    real = tf.random.uniform((batch, 64, 64, 3), -1, 1, seed=0)
    iterator = iter(tf.data.Dataset.from_tensors(real).repeat())
    return trainer, iterator


def burst(trainer, iterator, per_call: int, seconds: float = 2.0) -> float:
    """Training steps per second over calls of `per_call` steps lasting at least `seconds`."""
    calls, started = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - started < seconds:
        trainer.train_steps(iterator, tf.constant(per_call))[1].numpy()
        calls += 1
    return calls * per_call / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cases", default="dcgan:64,fast:8,fast:64,pokemon:32")
    args = parser.parse_args()
    print("| preset | batch | images/s, Keras' kernel gradients | images/s, matmul at small maps | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for case in args.cases.split(","):
        preset, batch = case.split(":")[0], int(case.split(":")[1])
        variants = [build(preset, batch, 0), build(preset, batch, matmul_grad.MATMUL_GRAD_MAX_MAP)]
        before, after = alternating_rounds(variants, batch, args.rounds)
        print(f"| {preset} | {batch} | {before:.1f} | {after:.1f} | {after / before:.2f}x |", flush=True)


def alternating_rounds(variants, batch: int, rounds: int) -> list[float]:
    """The median images/s of each (trainer, iterator) over `rounds` rounds that time each in turn."""
    for trainer, iterator in variants:  # trace, compile, warm
        trainer.train_steps(iterator, tf.constant(2))[1].numpy()
    per_call = max(1, round(burst(*variants[0], 1, 1.0)))  # about a second a call, as the loop
    rates = [[] for _ in variants]
    for _ in range(rounds):
        for (trainer, iterator), spent in zip(variants, rates):
            spent.append(batch * burst(trainer, iterator, per_call))
    return [float(np.median(r)) for r in rates]


if __name__ == "__main__":
    main()
