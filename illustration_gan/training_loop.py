"""Compatibility alias: the training code lives in `illustration_gan.training`."""

from illustration_gan.training import (  # noqa: F401
    Callback,
    GANTrainer,
    TrainingDiverged,
    TrainingInterrupted,
    learning_rate_scale,
    train,
)
