"""The generator's normalisation at a budget: batch norm against ProGAN's pixel norm in `fast`.

Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and
Variation" (ICLR; arXiv:1710.10196), section 4.2: the generator normalises each pixel's
feature vector to unit length after each convolution, instead of batch norm. `fast` trains
at batch 8, where batch norm's statistics come from 8 samples and tie each sample's
features to the other seven; pixel norm has no batch statistics, so a sample is the same
in training and in sampling. The DCGAN tutorial and every source preset keep batch norm,
so `g_norm` is a config field without a flag, set here.

    python -m experiments.g_norm train --seed 0 --minutes 20 --run_dir runs/g-norm/seed0
    python bench/quality_budget.py --run_dir runs/g-norm/seed0
"""

from __future__ import annotations

import argparse
import sys

from experiments.common import add_training_arguments, train_with_callback


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train.py --TYPE train with the generator's norm set")
    add_training_arguments(train)
    train.add_argument("--g_norm", default="pixel", help="batch | pixel")
    args = parser.parse_args(argv)
    train_with_callback(None, args, overrides={"g_norm": args.g_norm})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
