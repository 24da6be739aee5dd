"""The step's metrics over 12 steps of every preset, to 5 decimals: run it before and after a
change to the trainer, and diff the two outputs (they must be equal).

    python bench/step_equivalence.py > before.json   # on the old commit
    python bench/step_equivalence.py > after.json    # on the new one
    diff before.json after.json

Small networks (32 px, widths 8) at float32 on the default strategy, the same batch of reals;
`--strategy mirrored` runs the same under two logical CPUs (the other orchestration path).
"""

from __future__ import annotations

import argparse
import json

STEPS = 12
SMALL = dict(image_size=32, g_width=8, d_width=8, batch_size=8, precision="float32")
# Rules and terms no preset uses by default: name -> (preset, overrides).
VARIANTS = {
    "dcgan+monitor": ("dcgan", {"balance": "monitor"}),
    "dcgan+r1": ("dcgan", {"r1_gamma": 1.0}),
    "dcgan+n_critic": ("dcgan", {"n_critic": 2}),
    "fast+simultaneous": ("fast", {"update_order": "simultaneous"}),
    "fast+ada": ("fast", {"ada_augment": "color"}),
    "wgan+gp": ("wgan", {"gp_weight": 10.0, "clip_weights": 0.0}),
}


def metrics_of(preset: str, overrides: dict, steps: int, strategy) -> dict:
    import keras
    import tensorflow as tf

    from illustration_gan import config as config_lib
    from illustration_gan.training import GANTrainer

    config = config_lib.resolve(preset, {**SMALL, **overrides})
    keras.utils.set_random_seed(0)
    trainer = GANTrainer(config, strategy)
    real = tf.random.stateless_uniform([8, 32, 32, 3], [1, 2], -1, 1)
    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(real).repeat().unbatch().batch(8))
    iterator = iter(dataset)
    sums, ran, _ = trainer.train_steps(iterator, tf.constant(steps))
    record = {name: round(float(value) / int(ran), 5) for name, value in sums.items()}
    weights = trainer.sampling_generator.trainable_variables
    record["g_weight_sum"] = round(float(sum(tf.reduce_sum(tf.abs(v)) for v in weights)), 4)
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", choices=["default", "mirrored"], default="default")
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args()
    import tensorflow as tf

    from illustration_gan import config as config_lib

    if args.strategy == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        strategy = tf.distribute.get_strategy()
    runs = {**{preset: (preset, {}) for preset in config_lib.PRESETS}, **VARIANTS}
    out = {name: metrics_of(preset, overrides, args.steps, strategy) for name, (preset, overrides) in sorted(runs.items())}
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
