"""Training a GAN, one idea a module:

- `objectives`: D's and G's loss per loss family (minimax, hinge, wasserstein);
- `terms`: regularisers added to one side (R1, gradient penalty, z-prediction);
- `augment`: DiffAugment, and ADA's adaptive probability as an object that owns it;
- `regimes`: when D and G update (the sources' balance rules, n_critic), in-graph;
- `ema`: the generator's weight average;
- `optimizers`: Adam and RMSprop, Adam's update fused into one kernel a variable;
- `precision`: `--precision auto`, the policy and thread pools decided from the CPU before anything is built;
- `step`: `GANTrainer`, the compiled step composing the above, chosen once from the config;
- `callbacks`: the side effects (grids, generator.keras, stats, plots, TensorBoard, progress);
- `loop`: `train`, the epochs with checkpoints, resume, signals, deadline and NaN guard.
"""

from illustration_gan.training.callbacks import Callback, learning_rate_scale
from illustration_gan.training.precision import choose_threads
from illustration_gan.training.loop import TrainingDiverged, TrainingInterrupted, steps_per_epoch_of, train
from illustration_gan.training.step import GANTrainer

__all__ = [
    "Callback", "GANTrainer", "TrainingDiverged", "TrainingInterrupted", "choose_threads", "learning_rate_scale",
    "steps_per_epoch_of", "train",
]
