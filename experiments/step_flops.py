"""Floating-point operations of one compiled training step, per training image, by preset and widths.

TensorFlow's graph profiler (`ProfileOptionBuilder.float_operation`) counts the operations of
the traced `GANTrainer.train_step` graph: G's and D's forward and backward passes, and any
term's (the lightweight D's decoders), in float32 at 64 px. No timing: this chose the widths of
the `lightweight` preset against `fast` (docs/reproduction.md, "lightweight").

    python -m experiments.step_flops fast lightweight lightweight:d_width=9 lightweight:g_width=9

Each argument is a preset, optionally with integer overrides after colons.
"""

from __future__ import annotations

import argparse

import tensorflow as tf

from illustration_gan import config as config_lib
from illustration_gan.training import GANTrainer


def step_flops(preset: str, overrides: dict, image_size: int = 64) -> tuple[float, int]:
    """(FLOPs of one training step, its batch size) of `preset` with `overrides`."""
    config = config_lib.resolve(preset, {"image_size": image_size, "precision": "float32", **overrides})
    trainer = GANTrainer(config, tf.distribute.get_strategy())
    batch = config.training.batch_size
    iterator = iter(tf.data.Dataset.from_tensors(tf.zeros((batch, image_size, image_size, 3))).repeat())
    graph = trainer.train_step.get_concrete_function(iterator).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops), batch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="preset[:field=value...]")
    args = parser.parse_args()
    print("| variant | batch | GFLOP per step | MFLOP per image |\n| --- | --- | --- | --- |")
    for variant in args.variants:
        preset, *pairs = variant.split(":")
        flops, batch = step_flops(preset, {k: int(v) for k, v in (pair.split("=") for pair in pairs)})
        print(f"| {variant} | {batch} | {flops / 1e9:.2f} | {flops / batch / 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    main()
