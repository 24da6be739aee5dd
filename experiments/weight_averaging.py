"""Post-hoc averaging of a finished run's generator snapshots (Karras et al. 2024, EDM2's post-hoc EMA).

A run trained with `--keep_checkpoints 60` keeps every epoch's checkpoint, each holding
the live and the EMA generator. Averaging the snapshots of the last K epochs gives a
generator averaged over a longer window than the EMA's half-life, on the same training
trajectory, so the comparison is paired: it does not suffer the run-to-run noise of
retraining. Each row is scored on the same z; batch-norm statistics are copied from the
live generator of the last checkpoint, as the EMA generator's are.

    python -m experiments.weight_averaging RUN_DIR [--num_samples 2000] [--windows 1,3,6,12] [--epochs_back 6,12]

How quality grows with minutes of training along one run is experiments/quality_curve.py.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import tensorflow as tf

from experiments.common import run_arguments, sampler, score_and_tabulate
from illustration_gan import metrics, run_folder
from illustration_gan.networks import build_networks


def averaged_generator(model_config, prefixes: list[str], part: str, statistics_from: str):
    """Mean of the trainable weights of `part` over `prefixes`; BN statistics of the live G at `statistics_from`."""
    generator = build_networks(model_config).generator
    tf.train.Checkpoint(generator=generator).restore(statistics_from).expect_partial()
    scratch = build_networks(model_config).generator  # each snapshot is restored into it in turn
    sums = [np.zeros(v.shape, np.float64) for v in generator.trainable_variables]
    for prefix in prefixes:
        tf.train.Checkpoint(**{part: scratch}).restore(prefix).expect_partial()
        for total, variable in zip(sums, scratch.trainable_variables):
            total += variable.numpy()
    for variable, total in zip(generator.trainable_variables, sums):
        variable.assign(total / len(prefixes))
    return generator


def main() -> None:
    parser = run_arguments(__doc__)
    parser.add_argument("--windows", default="1,3,6,12", help="numbers of last snapshots to average (EMA generator)")
    parser.add_argument("--epochs_back", default="", help="also score the EMA generator this many snapshots earlier")
    args = parser.parse_args()

    config = run_folder.read_config(args.run_dir)
    state = tf.train.get_checkpoint_state(os.path.join(args.run_dir, "checkpoints"))
    prefixes = list(state.all_model_checkpoint_paths)
    if len(prefixes) < 2:
        sys.exit(f"{args.run_dir} keeps {len(prefixes)} checkpoint(s); train with --keep_checkpoints 60 (more than its epochs) to keep them all")
    last = prefixes[-1]
    extractor = metrics.FeatureExtractor(args.weights)
    real = metrics.real_features(args.faces, config.model.image_size, 5000, extractor, None)

    variants = []
    for k in (int(w) for w in args.windows.split(",") if w):
        variants.append((f"EMA generator, mean of the last {k} snapshot(s)", prefixes[-k:], "ema_generator", last))
    live = min(6, len(prefixes))
    variants.append((f"live generator, mean of the last {live} snapshots", prefixes[-live:], "generator", last))
    for back in (int(b) for b in args.epochs_back.split(",") if b):
        at = prefixes[-1 - back]
        variants.append((f"EMA generator {back} snapshots earlier ({os.path.basename(at)})", [at], "ema_generator", at))

    makers = [
        (name, lambda chosen=chosen, part=part, at=at: sampler(averaged_generator(config.model, chosen, part, at), False))
        for name, chosen, part, at in variants
    ]
    command = (f"python -m experiments.weight_averaging {args.run_dir} --num_samples {args.num_samples} "
               f"--windows {args.windows} --epochs_back {args.epochs_back}")
    score_and_tabulate("generator", makers, real, extractor, args.num_samples, command)


if __name__ == "__main__":
    main()
