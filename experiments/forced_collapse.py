"""A collapse forced into a real run, and what the collapse guard makes of it (issue 51, item 3).

  python -m experiments.forced_collapse --run_dir runs/forced/zero-seed0 --minutes 12 --epoch 8 --force zero_z
  python -m experiments.forced_collapse --run_dir runs/forced/spike-seed0 --minutes 12 --epoch 8 --force lr_spike --factor 20
  python -m experiments.forced_collapse --run_dir runs/forced/none-seed0 --minutes 12 --force none    # the control
  python -m experiments.forced_collapse --score_only --run_dir runs/forced/zero-seed0

Trains a preset (`fast` by default) on the shared faces at 64x64 for --minutes
(`experiments.common.train_with_callback`), and in epoch --epoch forces a collapse:

- zero_z: at the epoch's last step G's first kernel is zeroed, in the live generator and in its
  weight average (`--ema_kimg`), so every z gives one image: the collapse of
  tests/test_training_loop.py, in a run of real length. (Zeroing only the live one is not a
  collapse the guard sees: the average trails by thousands of images, and G relearns to read z
  within the next epoch.)
- lr_spike: both learning rates times --factor for the whole epoch, issue 51's example of a run
  pushed off course (the rates return to the run's after it);
- none: nothing, the control of the same seed.

Before forcing, the sampling generator is saved as generator-before-collapse.keras. Afterwards
the FID (FID5k by default) of that generator and of the run's last generator.keras are measured
against the faces, and the lines print: each epoch's `diversity` and roll-back from stats.jsonl,
both FIDs, and whether the end is within 10% of the FID before the collapse (issue 51's target).
"""

from __future__ import annotations

import argparse
import os
import sys

from experiments.common import FACES, FID_WEIGHTS, add_training_arguments, train_with_callback

BEFORE_FILE = "generator-before-collapse.keras"
FORCES = ("zero_z", "lr_spike", "none")


def make_callback(force: str, epoch: int, factor: float, run_dir: str):
    import tensorflow as tf

    from illustration_gan import run_folder, training

    class ForceCollapse(training.Callback):
        """Forces `force` in epoch `epoch` (see the module docstring)."""

        def on_train_begin(self, trainer):
            self.trainer, self.steps_per_epoch, self.spiking = trainer, None, False

        def on_epoch_end(self, trainer, done_epoch, record):
            if done_epoch == 1:
                self.steps_per_epoch = int(trainer.step.numpy())  # calls of the step never cross an epoch's end

        def save_before(self):
            run_folder.save_model(self.trainer.sampling_generator, os.path.join(run_dir, BEFORE_FILE))

        def scale_rates(self, scale: float):
            self.trainer.rate_factor *= scale
            for optimizer in (self.trainer.g_optimizer, self.trainer.d_optimizer):
                optimizer.learning_rate.assign(optimizer.learning_rate * scale)

        def on_steps_begin(self, step):  # after LearningRateDecay's, which sets the rates from rate_factor
            if force == "lr_spike" and self.steps_per_epoch and step == (epoch - 1) * self.steps_per_epoch:
                self.save_before()
                self.spiking = True
                self.scale_rates(factor)
                print(f"forced: both learning rates x{factor:g} from step {step}", flush=True)

        def on_steps_end(self, step, steps, means):
            if not self.steps_per_epoch or step != epoch * self.steps_per_epoch:
                return
            if force == "zero_z":
                self.save_before()
                for generator in {id(g): g for g in (self.trainer.generator, self.trainer.sampling_generator)}.values():
                    kernel = generator.trainable_variables[0]
                    kernel.assign(tf.zeros_like(kernel))
                print(f"forced: G's first kernel zeroed at step {step}, in the live generator and its average",
                      flush=True)
            elif self.spiking:
                self.spiking = False
                self.scale_rates(1 / factor)
                print(f"forced: the learning rates back to the run's at step {step}", flush=True)

    return ForceCollapse()


def score(run_dir: str, faces: str, weights: str, num_samples: int) -> int:
    import keras

    import illustration_gan.networks  # noqa: F401  (registers the custom classes)
    from illustration_gan import evaluation, generate, metrics, run_folder

    records = run_folder.read_jsonl(os.path.join(run_dir, run_folder.STATS_FILE))
    print("| epoch | diversity | rolled back to |\n| --- | --- | --- |")
    for r in records:
        print(f"| {r['epoch']} | {r.get('diversity', float('nan')):.3f} | {r.get('rolled_back_to', '')} |")
    extractor = metrics.FeatureExtractor(weights)
    fids = {}
    for name in (BEFORE_FILE, run_folder.GENERATOR_FILE):
        path = os.path.join(run_dir, name)
        if not os.path.exists(path):
            print(f"{path}: not written (no collapse was forced, or the run stopped before it)")
            continue
        sampler = generate.Sampler(keras.saving.load_model(path, compile=False))
        scores = evaluation.evaluate_sampler(sampler, faces, num_samples, 5000, extractor)
        label = next(k for k in scores if k.startswith("fid"))[3:]  # fid5k: 5k samples
        fids[name] = scores["fid" + label]
        print(f"{name}: FID{label} {fids[name]:.1f}, precision {scores['precision' + label]:.3f}, "
              f"recall {scores['recall' + label]:.3f}", flush=True)
    if len(fids) == 2:
        before, end = fids[BEFORE_FILE], fids[run_folder.GENERATOR_FILE]
        print(f"end against before the collapse: {end:.1f} / {before:.1f} = {end / before:.3f} "
              f"({'within' if end <= 1.1 * before else 'not within'} 10%)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_arguments(parser)
    parser.add_argument("--force", choices=FORCES, default="zero_z")
    parser.add_argument("--epoch", type=int, default=8, help="the epoch in which the collapse is forced (from 2)")
    parser.add_argument("--factor", type=float, default=20.0, help="lr_spike: the rates' multiple")
    parser.add_argument("--num_samples", type=int, default=5000)
    parser.add_argument("--weights", default=str(FID_WEIGHTS))
    parser.add_argument("--score_only", action="store_true", help="score a run already trained")
    args = parser.parse_args()
    if args.epoch < 2:
        parser.error("--epoch must be 2 or more: epoch 1 measures the steps per epoch")
    if not args.score_only:
        try:
            train_with_callback(make_callback(args.force, args.epoch, args.factor, args.run_dir), args)
        except SystemExit as stop:  # cli.run ends with the command's exit code
            if stop.code not in (0, None):
                return int(stop.code) if isinstance(stop.code, int) else 1
    return score(args.run_dir, args.faces or str(FACES), args.weights, args.num_samples)


if __name__ == "__main__":
    sys.exit(main())
