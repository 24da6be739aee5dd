"""One change to the training step, timed before and after in one process.

This machine's speed drifts by tens of percent between runs of `bench/benchmark.py`
(BENCHMARKS.md), so a change to the step is compared in one process: for each preset,
batch and precision, two trainers from the same seed, one built as before the change and
one as now, timed in alternating rounds of 2-second bursts of the loop's several-steps
calls on a fixed batch (`experiments.matmul_grad_step`); the median round counts.

Changes:
- `one_g_forward`: under the default strategy the alternating step reuses the D phase's
  fakes for G's update (one tape over both phases, `GANTrainer.reuses_g_forward`), as the
  PyTorch DCGAN tutorial does; before, G ran forward again in the G phase.
- `fused_batch_norm`: batch norm by TensorFlow's fused kernel
  (`networks/fused_batch_norm.py`); before, Keras' `BatchNormalization`.

    python -m experiments.step_change --change one_g_forward [--rounds 7] [--cases fast:8:mixed_bfloat16,...]
"""

from __future__ import annotations

import argparse

import keras
import tensorflow as tf

from experiments.matmul_grad_step import alternating_rounds
from illustration_gan import config as config_lib
from illustration_gan import training
from illustration_gan.networks import fused_batch_norm

CASES = "fast:8:mixed_bfloat16,fast:8:float32,fast:64:mixed_bfloat16,dcgan:64:mixed_bfloat16,dcgan:64:float32"


def build(preset: str, batch: int, precision: str, change: str, after: bool):
    config = config_lib.resolve(preset, {"image_size": 64, "batch_size": batch, "precision": precision})
    fused = fused_batch_norm.BatchNormalization
    if change == "fused_batch_norm" and not after:
        fused_batch_norm.BatchNormalization = keras.layers.BatchNormalization  # what networks.common built before
    try:
        trainer = training.GANTrainer(config, tf.distribute.get_strategy())
    finally:
        fused_batch_norm.BatchNormalization = fused
    if change == "one_g_forward":
        assert trainer.reuses_g_forward, f"{preset} does not reuse G's forward"
        trainer.reuses_g_forward = after  # read when the step is first traced
    real = tf.random.uniform((batch, 64, 64, 3), -1, 1, seed=0)
    return trainer, iter(tf.data.Dataset.from_tensors(real).repeat())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--change", required=True, choices=["one_g_forward", "fused_batch_norm"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cases", default=CASES)
    args = parser.parse_args()
    print(f"| preset | batch | precision | images/s before {args.change} | after | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case in args.cases.split(","):
        preset, batch, precision = case.split(":")
        batch = int(batch)
        variants = [build(preset, batch, precision, args.change, after) for after in (False, True)]
        before, after = alternating_rounds(variants, batch, args.rounds)
        print(f"| {preset} | {batch} | {precision} | {before:.1f} | {after:.1f} | {after / before:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
