"""Training a GAN: what is minimised (objectives), the compiled step (step), the generator's
weight average (ema), the side effects (callbacks) and the epoch loop (loop).

Read in this order: `loop.train` runs epochs of `step.GANTrainer.train_step`, which
composes an objective and its terms, the augmenter and the regime chosen once from the config.
"""

from illustration_gan.training.callbacks import Callback, learning_rate_scale
from illustration_gan.training.loop import TrainingDiverged, TrainingInterrupted, train
from illustration_gan.training.step import GANTrainer

__all__ = ["Callback", "GANTrainer", "TrainingDiverged", "TrainingInterrupted", "learning_rate_scale", "train"]
