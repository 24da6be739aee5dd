"""The alternating step with G's forward run twice and run once, in one process.

Under the default strategy the step reuses the D phase's fakes for G's update (one tape
over both phases, `GANTrainer.reuses_g_forward`), as the PyTorch DCGAN tutorial does;
before, G ran forward again in the G phase. For each preset, batch and precision, two
trainers from the same seed, one with `reuses_g_forward` turned off before its step is
traced (the code before), timed in alternating rounds of 2-second bursts of the loop's
several-steps calls on a fixed batch (`experiments.matmul_grad_step`); the median round counts.

    python -m experiments.one_g_forward_step [--rounds 7] [--cases fast:8:mixed_bfloat16,...]
"""

from __future__ import annotations

import argparse

import tensorflow as tf

from experiments.matmul_grad_step import alternating_rounds
from illustration_gan import config as config_lib
from illustration_gan import training

CASES = "fast:8:mixed_bfloat16,fast:8:float32,fast:64:mixed_bfloat16,dcgan:64:mixed_bfloat16,dcgan:64:float32"


def build(preset: str, batch: int, precision: str, reuse: bool):
    config = config_lib.resolve(preset, {"image_size": 64, "batch_size": batch, "precision": precision})
    trainer = training.GANTrainer(config, tf.distribute.get_strategy())
    if trainer.reuses_g_forward and not reuse:
        trainer.reuses_g_forward = False
    real = tf.random.uniform((batch, 64, 64, 3), -1, 1, seed=0)
    return trainer, iter(tf.data.Dataset.from_tensors(real).repeat())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cases", default=CASES)
    args = parser.parse_args()
    print("| preset | batch | precision | images/s, G forward twice | images/s, once | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case in args.cases.split(","):
        preset, batch, precision = case.split(":")
        batch = int(batch)
        variants = [build(preset, batch, precision, False), build(preset, batch, precision, True)]
        assert variants[1][0].reuses_g_forward, f"{preset} does not reuse G's forward"
        before, after = alternating_rounds(variants, batch, args.rounds)
        print(f"| {preset} | {batch} | {precision} | {before:.1f} | {after:.1f} | {after / before:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
