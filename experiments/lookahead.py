"""Lookahead-minmax at a budget: does damping the game's rotation buy FID at 20 minutes?

Chavdarova et al. 2021, "Taming GANs with Lookahead-Minmax" (ICLR; arXiv:2006.14567,
Algorithm 1): both players take `k` ordinary (fast) updates; then each player's slow
weights move `alpha` of the way to its fast weights, and the fast weights restart from
the slow ones. The optimizers' states are kept. The paper's DCGAN-size runs on CIFAR-10
and SVHN use k = 5 and alpha = 0.5. In `fast`'s 20-minute runs the whole set of samples
swings in colour from epoch to epoch (docs/experiments.md, "An offset that every sample
shares"), the rotation this method was built to damp.

    python -m experiments.lookahead train --seed 0 --minutes 20 --k 5 --alpha 0.5 --run_dir runs/lookahead/seed0
    python bench/quality_budget.py --run_dir runs/lookahead/seed0

`train` runs `train.py --TYPE train` on the shared faces with the given preset (`fast` by
default) and the lookahead step after every k-th update of G (the step's last update).
It hooks in through the generator EMA's update, which the compiled step calls after G's
update, so it needs a preset with an EMA. The slow weights are not checkpointed: a
resumed run starts them afresh from the fast ones.
"""

from __future__ import annotations

import argparse
import sys

from experiments.common import add_training_arguments, train_with_callback


def lookahead_callback(k: int, alpha: float):
    """A training callback that adds the lookahead step to the trainer's compiled step."""
    import tensorflow as tf

    from illustration_gan import training

    class LookaheadAndAverage:
        """Stands in for the trainer's GeneratorEMA: the lookahead step, then the EMA's own update."""

        def __init__(self, own, fast):
            self.own, self.generator, self.fast = own, own.generator, fast
            self.slow = [tf.Variable(tf.convert_to_tensor(v), trainable=False) for v in fast]

        def update(self, steps_done):
            tf.cond(tf.equal((steps_done + 1) % k, 0), self._synchronise, lambda: tf.constant(False))
            self.own.update(steps_done)

        def _synchronise(self):
            for slow, fast in zip(self.slow, self.fast):
                slow.assign(slow + alpha * (fast - slow))
                fast.assign(slow)
            return tf.constant(True)

    class Lookahead(training.Callback):
        def on_train_begin(self, trainer):
            # Before the compiled step is first traced, so the trace holds the lookahead step.
            if trainer.ema is None:
                sys.exit("the lookahead hooks into the generator EMA's update; give --ema_kimg")
            fast = [*trainer.generator.trainable_variables, *trainer.discriminator.trainable_variables]
            trainer.ema = LookaheadAndAverage(trainer.ema, fast)

    return Lookahead()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="one run with the lookahead step")
    add_training_arguments(train)
    train.add_argument("--k", type=int, default=5, help="fast updates between lookahead steps")
    train.add_argument("--alpha", type=float, default=0.5, help="share of the way the slow weights move")
    args = parser.parse_args()
    if args.k < 1 or not 0 <= args.alpha <= 1:
        sys.exit("--k must be at least 1 and --alpha within [0, 1]")
    train_with_callback(lookahead_callback(args.k, args.alpha), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
