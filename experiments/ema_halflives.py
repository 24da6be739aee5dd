"""Several EMA half-lives on one training trajectory: which average of G scores best at a budget?

The generator's weight average (training/ema.py, after NVlabs/stylegan2-ada's `ema_kimg`
with its 5% ramp-up) does not feed back into training, so one run can carry several
averages at once. Each is then scored on the same z against the same real features,
with no run-to-run noise between them: the comparison is exact for that trajectory.
stylegan2-ada's own rule for its `auto` config sets `ema_kimg = batch * 10 / 32` (2.5 at
batch 8; NVlabs/stylegan2-ada train.py, `spec.ema`); `fast` uses 5.

    python -m experiments.ema_halflives train --seed 0 --minutes 20 --kimg 1.25,2.5,10 --run_dir runs/ema/seed0
    python -m experiments.ema_halflives score runs/ema/seed0 [--num_samples 5000]

`train` runs `train.py --TYPE train` on the shared faces with the given preset (`fast` by
default) and its own EMA (whose generator.keras the run folder holds as usual), and
keeps one more average per `--kimg`, saved as `generator-ema<kimg>.keras` when training
stops. The extra averages cost a little of each step, the same for all of them. `score`
evaluates the live generator and every average of the run (FID, KID, precision, recall) on the same z,
as `train.py --TYPE evaluate` does, with the real faces' features computed once.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys

from experiments.common import FACES, FID_WEIGHTS, add_training_arguments, score_and_tabulate, train_with_callback

EXTRA_FILE = "generator-ema{kimg:g}.keras"


def half_life_of(path: str) -> str:
    """The half-life (kimg, as written) in the name of an extra average's file."""
    return re.search(r"ema([0-9.e+-]+)\.keras$", path).group(1)


def extra_emas_callback(kimgs: list[float], run_dir: str):
    """A training callback that keeps an average per half-life in `kimgs` and saves each at the end."""
    from illustration_gan import training
    from illustration_gan.networks import build_networks
    from illustration_gan.training.ema import GeneratorEMA

    class AllAverages:
        """Stands in for the trainer's GeneratorEMA: its generator is the run's own average."""

        def __init__(self, own, extras):
            self.own, self.extras = own, extras
            self.generator = own.generator

        def update(self, steps_done):
            for average in (self.own, *self.extras.values()):
                average.update(steps_done)

    class ExtraAverages(training.Callback):
        def on_train_begin(self, trainer):
            # Before the compiled step is first traced, so the trace updates every average.
            if trainer.ema is None:
                sys.exit("the run has no EMA of its own (ema_kimg 0); give --ema_kimg")
            batch = trainer.config.training.batch_size
            self.extras = {k: GeneratorEMA(build_networks(trainer.config.model).generator, trainer.generator, k, batch)
                           for k in kimgs}
            trainer.ema = AllAverages(trainer.ema, self.extras)

        def on_train_end(self, trainer):
            for kimg, average in self.extras.items():
                name = EXTRA_FILE.format(kimg=kimg)
                temporary = os.path.join(run_dir, "tmp-" + name)  # Keras wants the .keras ending; score's glob skips it
                average.generator.save(temporary)
                os.replace(temporary, os.path.join(run_dir, name))

    return ExtraAverages()


def run_training(args) -> int:
    kimgs = [float(k) for k in args.kimg.split(",") if k]
    train_with_callback(extra_emas_callback(kimgs, args.run_dir), args)
    return 0


def run_scoring(args) -> int:
    from illustration_gan import generate, metrics, run_folder

    config = run_folder.read_config(args.run_dir)
    extras = sorted(glob.glob(os.path.join(args.run_dir, "generator-ema*.keras")),
                    key=lambda p: float(half_life_of(p)))
    if not extras:
        sys.exit(f"{args.run_dir} holds no generator-ema*.keras; train it with `python -m experiments.ema_halflives train`")
    import keras

    only = {k if k == "live" else float(k) for k in args.only.split(",") if k}
    makers = []
    if not only or "live" in only:  # what the averages are measured against
        makers.append(("none: the live generator of the newest checkpoint",
                       lambda: generate.load_sampler(checkpoint=os.path.join(args.run_dir, "checkpoints")).sample_uint8))
    if not only or config.training.ema_kimg in only:
        makers.append((f"{config.training.ema_kimg:g} (the run's own, generator.keras)",
                       lambda: generate.load_sampler(args.run_dir).sample_uint8))
    for path in extras:
        kimg = half_life_of(path)
        if not only or float(kimg) in only:
            makers.append((kimg, lambda p=path: generate.Sampler(keras.saving.load_model(p, compile=False)).sample_uint8))
    extractor = metrics.FeatureExtractor(args.weights)
    real = metrics.real_features(args.faces, config.model.image_size, 5000, extractor, args.cache_dir or None)
    command = f"python -m experiments.ema_halflives score {args.run_dir} --num_samples {args.num_samples}"
    command += f" --only {args.only}" if args.only else ""
    score_and_tabulate("EMA half-life (kimg)", makers, real, extractor, args.num_samples, command)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="one run carrying extra averages")
    add_training_arguments(train)
    train.add_argument("--kimg", default="1.25,2.5,10", help="half-lives of the extra averages, thousands of images")
    score = commands.add_parser("score", help="score every average of a finished run on the same z")
    score.add_argument("run_dir")
    score.add_argument("--num_samples", type=int, default=5000)
    score.add_argument("--faces", default=str(FACES))
    score.add_argument("--weights", default=str(FID_WEIGHTS))
    score.add_argument("--cache_dir", default="", help="keep the real faces' features here between runs")
    score.add_argument("--only", default="", help="score only these half-lives (kimg) and/or `live`, e.g. to split a run over cores")
    args = parser.parse_args()
    return run_training(args) if args.command == "train" else run_scoring(args)


if __name__ == "__main__":
    sys.exit(main())
