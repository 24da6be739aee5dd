"""What to train: frozen dataclasses, named presets, and resolving flags into one config.

A preset is the full recipe of one source project (architecture and training
regime). Flags given on the command line override single fields of the preset;
the resolved config is what a run folder records in `training_options.json`
and what `generate` rebuilds a generator from.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import NamedTuple

from illustration_gan import UserError

IMAGE_SIZES = (32, 64, 128, 256)
BALANCE_RULES = ("none", "margin", "monitor", "boost")
ARCHITECTURE_NAMES = ("illustration", "dcgan", "dense", "keras_margin", "lightweight")
UPSAMPLING = ("transposed", "resize")
UPDATE_ORDERS = ("alternating", "simultaneous")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
INITS = ("dcgan", "xavier")
MINIBATCH_PLACES = ("head", "first_block")
LOSSES = ("minimax", "hinge", "wasserstein")
D_NORMS = ("batch", "none")
FITS = ("crop", "stretch")
OPTIMIZERS = ("adam", "rmsprop", "rmsprop_pytorch")
# The framework whose layer details a reproduction's networks take, and the architecture it applies to.
FRAMEWORKS = {"": None, "prettytensor": "illustration", "pytorch": "dcgan", "keras1": "keras_margin"}
STRATEGIES = ("default", "mirrored", "multiworker")
AUGMENTATIONS = ("color", "translation", "cutout")  # DiffAugment's transforms (training/augment.py)


def option(default, help: str, group: str, *, lower=None, upper=None, choices=None, cli_default=None):
    """A config field that is also a command-line flag: the CLI defines `--NAME` from this
    metadata alone (cli.py), so an option is written once. `group` is its heading in `--help`;
    `lower`/`upper` bound a number, `choices` make it an enum; `cli_default` is the flag's
    value where it differs from the field's (only `precision`: "auto" is decided by the run)."""
    meta = dict(help=help, group=group, lower=lower, upper=upper, choices=choices, cli_default=cli_default)
    return field(default=default, metadata=meta)


MODEL, RECIPE, RUN, DATA = "model", "training recipe", "run", "data"  # the --help groups of config flags


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the networks (and nothing about training)."""

    architecture: str = "illustration"  # key of networks.ARCHITECTURES
    image_size: int = option(64, "Training resolution (32, 64, 128 or 256). Default 32 on the toy faces.", MODEL,
                             choices=IMAGE_SIZES)
    z_dim: int = option(100, "Size of the latent vector z.", MODEL, lower=1)
    z_distribution: str = "truncated_normal"  # "normal" | "truncated_normal" | "uniform"
    g_width: int = option(64, "Generator channels at the finest level (doubling per level, up to 512).", MODEL,
                          lower=1)
    d_width: int = option(64, "Discriminator channels at the finest level.", MODEL, lower=1)
    max_width: int = 512  # widest level (the PyTorch tutorial's 512; the Pokemon GAN's ngf 128 reaches 1024)
    fc_units: int = 1024  # fully connected layers (illustration, dense)
    minibatch_kernels: int = option(0, "Minibatch discrimination kernels B (0 = off).", MODEL, lower=0)
    minibatch_dims: int = 5  # minibatch discrimination C
    minibatch_place: str = "head"  # on D's flattened features (Salimans et al.) | "first_block" (Pokemon GAN)
    init: str = "dcgan"  # "dcgan": N(0, 0.02), bias-free before batch norm | "xavier": Glorot uniform + biases
    z_predictor: bool = option(False, "IllustrationGAN's auxiliary z-predictor (illustration model only).", MODEL)
    critic: bool = False  # linear critic output (WGAN) instead of a logit for BCE
    spectral_norm: bool = option(False, "Spectrally normalised discriminator without batch norm (SNGAN; dcgan and "
                                 "fast models).", MODEL)
    d_norm: str = option("batch", "Normalisation of the discriminator's hidden layers: batch norm (DCGAN, "
                         "IllustrationGAN) or none (biases instead; dcgan, fast and illustration models).", MODEL,
                         choices=D_NORMS)
    upsampling: str = option("transposed", "DCGAN generator's 2x steps: 4x4 stride-2 transposed convolutions, or "
                             "resize-convolutions (nearest 2x + 3x3 conv, against checkerboard artefacts; dcgan and "
                             "fast models).", MODEL, choices=UPSAMPLING)
    framework: str = ""  # layer details as the source's library ran them (docs/reproduction.md); "" = as before issue 52

    @property
    def levels(self) -> int:
        """Number of 2x resolution steps from 4x4 to image_size."""
        return int(math.log2(self.image_size)) - 2


@dataclass(frozen=True)
class TrainingConfig:
    """The optimisation recipe and the regime deciding when D and G update."""

    batch_size: int = option(64, "Global batch size, split across replicas.", RECIPE, lower=1)
    loss: str = option("minimax", "GAN loss: minimax (non-saturating G), hinge (SNGAN, SAGAN) or wasserstein "
                       "(needs a critic, --model wgan).", RECIPE, choices=LOSSES)
    optimizer: str = "adam"  # "adam" | "rmsprop" | "rmsprop_pytorch" (PyTorch's form: lr g / (sqrt(v) + eps))
    g_lr: float = option(2e-4, "Generator learning rate.", RECIPE, lower=0)
    d_lr: float = option(2e-4, "Discriminator learning rate.", RECIPE, lower=0)
    beta1: float = 0.5
    beta2: float = 0.999
    label_smoothing: bool = False
    epsilon: float = 1e-7  # the optimizers' epsilon (Keras' default; PyTorch's and Keras 1's is 1e-8)
    rmsprop_rho: float = 0.9  # RMSprop's smoothing (Keras' default; PyTorch's alpha is 0.99)
    update_order: str = option("alternating", "alternating: D's update, then G's loss from the updated D (every "
                               "source); simultaneous: both gradients from one forward pass.", RECIPE,
                               choices=UPDATE_ORDERS)
    fresh_g_z: bool = False  # G's phase draws fresh z (IllustrationGAN, the boosted Pokemon training) or reuses D's
    balance: str = option("none", "When D and G update: none (D then G every step), margin (jhayes14/GAN), monitor "
                          "or boost (Edouard99/GAN); docs/training-options.md, Regimes.", RECIPE, choices=BALANCE_RULES)
    margin: float = 0.1  # --balance margin: largest allowed |L_G - L_D| (jhayes14/GAN's inter_model_margin)
    margin_repeats: int = 10  # --balance margin: cap on extra updates per batch (the source has none)
    monitor_ratio: float = 0.8  # --balance monitor: D updates when errD > ratio x errG (training_monitoring.py)
    n_critic: int = option(1, "G updates on every n-th step (WGAN: 3).", RECIPE, lower=1)
    clip_weights: float = option(0.0, "Clip critic weights to +-value after each step (WGAN); 0 = off.", RECIPE,
                                 lower=0)
    gp_weight: float = option(0.0, "Gradient penalty weight (WGAN-GP); 0 = off.", RECIPE, lower=0)
    r1_gamma: float = option(0.0, "R1 penalty gamma on real images (minimax loss); 0 = off.", RECIPE, lower=0)
    augment: str = option("", "DiffAugment policy for D's inputs: comma list of color, translation, cutout "
                          "('' = off).", RECIPE)
    ada_augment: str = option("", "Transforms (of color, translation, cutout; not in --augment) applied to each of "
                              "D's inputs with an adaptive probability p, raised while D is surer of the reals than "
                              "ADA's target (ADA); '' = off.", RECIPE)
    ada_target: float = 0.6  # ADA's target for the mean sign of D's real logits (Karras et al. 2020)
    ema_kimg: float = option(0.0, "Half-life (thousands of images) of the generator weight average used for "
                             "samples and generator.keras; 0 = off.", RECIPE, lower=0)
    lr_decay: float = option(0.0, "Final share of the run (of --epochs, or of --max_minutes when set) over which "
                             "both learning rates fall linearly to 0; 0 = constant.", RECIPE, lower=0, upper=1)
    flip: bool = True  # random horizontal flips of the training images (IllustrationGAN's input.py line 126)
    fit: str = "crop"  # to a square: "crop" the centre (the tutorial) | "stretch" the whole image (jhayes14's cv2.resize)


@dataclass(frozen=True)
class Config:
    """One training run: the model, the recipe, the data and the run's bookkeeping."""

    preset: str = "illustration"
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    path: str = option("", "Training images: a folder (searched recursively), a folder of TFRecord shards, or a "
                       "glob of shards (gs:// works). Empty: train uses the built-in procedural toy faces; evaluate, "
                       "nearest and serve use the run's training images.", DATA)
    epochs: int = option(50, "Epochs to train (total, counting epochs before a resume).", RECIPE, lower=1)
    seed: int = option(0, "Random seed: initial weights, z, data order and flips, generation.", RUN, lower=0,
                       upper=2**32 - 1)
    strategy: str = option("default", "tf.distribute strategy.", RUN, choices=STRATEGIES)
    precision: str = option("float32", "Keras dtype policy; auto picks bfloat16 where the CPU computes it natively "
                            "(training/precision.py).", RUN, choices=PRECISIONS, cli_default="auto")
    run_root: str = option("runs", "Folder holding the run folders.", RUN)
    max_minutes: float = option(0.0, "Stop (with a checkpoint) after this many minutes of training, counting those "
                                "before a resume; 0 = no limit.", RUN, lower=0)
    keep_checkpoints: int = option(3, "Checkpoints to keep.", RUN, lower=1)
    grid_size: int = 64  # number of images in the per-epoch sample grid

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        top = {k: v for k, v in data.items() if k in known}
        top["model"] = from_dict(ModelConfig, data.get("model", {}))
        top["training"] = from_dict(TrainingConfig, data.get("training", {}))
        return cls(**top)


def flag_fields() -> list[dataclasses.Field]:
    """The fields that are command-line flags (declared with `option`): the run's, the model's, the recipe's."""
    return [f for cls in (Config, ModelConfig, TrainingConfig) for f in dataclasses.fields(cls) if f.metadata]


def flat(config: Config) -> dict:
    """Every field of `config` by name (names are unique across the three dataclasses), without `preset`."""
    data = config.to_json()
    values = {**data.pop("model"), **data.pop("training"), **data}
    values.pop("preset")
    return values


def from_dict(cls, data: dict):
    """`cls(**data)` without the keys `cls` does not know: options removed since a run was
    recorded (e.g. `pack`, `feature_matching`, pruned in issue 21) are ignored."""
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


class Preset(NamedTuple):
    """A named recipe: the networks, the training rule, and run-level fields (epochs, image_size...)
    where its source fixes them; fields not given come from the dataclasses. Presets without `epochs`
    keep Config.epochs: IllustrationGAN counts 1e6 loop steps, not epochs (train.py line 25), and
    jhayes14's default of 2 (train.py line 184) is not what its README's images trained for."""

    model: ModelConfig
    training: TrainingConfig
    run: dict = {}


# Every source trained in float32, and on the toy faces bfloat16 covered fewer modes than float32 on 3 of 3
# seeds (docs/reproduction.md, "Data, training length and precision"): the reproductions keep the sources'
# precision unless --precision is given. `fast` and `lightweight` take --precision auto.
SOURCE_PRECISION = dict(precision="float32")

# Each preset reproduces one source. Defaults not listed come from the dataclasses.
PRESETS: dict[str, Preset] = {
    # IllustrationGAN (tdrussell/IllustrationGAN model.py, train.py): FC stack + bilinear upsampling G,
    # max-pool D with minibatch discrimination, the z-predictor in its own step; Xavier init; prettytensor
    # 0.6.2's batch norm; truncated normal z; TF1's Adam 2e-4 / 0.5 / 1e-8; batch 32; every phase draws its own z.
    "illustration": Preset(
        ModelConfig(
            architecture="illustration", z_distribution="truncated_normal", minibatch_kernels=100,
            minibatch_dims=5, z_predictor=True, init="xavier", framework="prettytensor",
        ),
        TrainingConfig(batch_size=32, fresh_g_z=True, epsilon=1e-8),
        run=SOURCE_PRECISION,
    ),
    # DCGAN (Radford et al. 2015) as in the PyTorch DCGAN tutorial: batch 128, PyTorch's Adam epsilon.
    "dcgan": Preset(
        ModelConfig(architecture="dcgan", z_distribution="normal", framework="pytorch"),
        TrainingConfig(batch_size=128, epsilon=1e-8, flip=False),  # Resize + CenterCrop, no flip
        run=dict(epochs=100, **SOURCE_PRECISION),  # the DCGAN anime-faces source's 100 (its text; the tutorial's 5 were on CelebA)
    ),
    # WGAN (Arjovsky et al. 2017) on the tutorial's networks, with the Pokemon GAN's schedule
    # (RMSprop 5e-5, clipping 0.01, G on every third step); pokemon-wgan is that project's own.
    "wgan": Preset(
        ModelConfig(architecture="dcgan", z_distribution="normal", critic=True, framework="pytorch"),
        TrainingConfig(loss="wasserstein", optimizer="rmsprop", g_lr=5e-5, d_lr=5e-5, n_critic=3, clip_weights=0.01),
        run=SOURCE_PRECISION,
    ),
    # The Pokemon GAN's DCGAN as its notebook ran it (Edouard99/GAN Train.ipynb, gan64.py, training_boosting.py):
    # ngf = ndf = 128 (widest level 1024), nz 16, batch 32, Adam 1.5e-4 / (0.5, 0.999) with PyTorch's
    # epsilon, label smoothing 0.95 / 0.05, convolutional minibatch discrimination after D's first block,
    # the boosted training with noisy labels.
    "pokemon": Preset(
        ModelConfig(
            architecture="dcgan", z_distribution="normal", z_dim=16, g_width=128, d_width=128, max_width=1024,
            minibatch_kernels=2, minibatch_dims=16, minibatch_place="first_block", framework="pytorch",
        ),
        TrainingConfig(
            batch_size=32, g_lr=1.5e-4, d_lr=1.5e-4, epsilon=1e-8, label_smoothing=True, balance="boost", flip=False,
        ),  # its data was augmented beforehand; the loader only normalises
        run=dict(epochs=150, **SOURCE_PRECISION),  # Train.ipynb, the "Training" cell
    ),
    # The Pokemon GAN's WGAN (training_wgan.py): the same networks with a linear critic, PyTorch's RMSprop 5e-5
    # (alpha 0.99, epsilon 1e-8 added to sqrt(v)), clipping 0.01, G on every third iteration.
    "pokemon-wgan": Preset(
        ModelConfig(
            architecture="dcgan", z_distribution="normal", z_dim=16, g_width=128, d_width=128, max_width=1024,
            minibatch_kernels=2, minibatch_dims=16, minibatch_place="first_block", critic=True, framework="pytorch",
        ),
        TrainingConfig(
            batch_size=32, loss="wasserstein", optimizer="rmsprop_pytorch", g_lr=5e-5, d_lr=5e-5, epsilon=1e-8,
            rmsprop_rho=0.99, n_critic=3, clip_weights=0.01, flip=False,
        ),
        run=dict(epochs=150, **SOURCE_PRECISION),
    ),
    # The Keras margin GAN (jhayes14/GAN model.py, train.py): dense + nearest-upsampling G to 1024-wide 4x4,
    # 5x5 stride-2 D with dropout and no batch norm, z ~ U(-1, 1), batch 50, Adam 2e-5 / (0.0005, 0.999) /
    # 1e-8, and the margin rule (0.10); G's batch norm as Keras 1.0.5 ran the channels-first model.
    "keras-margin": Preset(
        ModelConfig(
            architecture="keras_margin", z_distribution="uniform", g_width=128, d_width=128, max_width=1024,
            init="xavier", framework="keras1",
        ),
        TrainingConfig(
            batch_size=50, g_lr=2e-5, d_lr=2e-5, beta1=0.0005, epsilon=1e-8, balance="margin", flip=False, fit="stretch",
        ),  # cv2.resize to 64x64, no flip
        run=SOURCE_PRECISION,
    ),
    # Not from a source: what measured best at 20 minutes of a 2-core CPU (docs/experiments.md): the DCGAN
    # at half width with resize-convolutions in G, no batch norm in D, batch 8, Adam 4e-4 for both falling linearly
    # to 0 over the run's last quarter, DiffAugment translation and cutout, and an EMA generator.
    "fast": Preset(
        ModelConfig(
            architecture="dcgan", z_distribution="normal", g_width=32, d_width=32, upsampling="resize", d_norm="none"
        ),
        # Alternating updates (the default) beat simultaneous ones on every seed at 20 minutes, 4e-4 beat the
        # DCGAN's 2e-4, and decaying it over the last quarter beat a constant rate (docs/experiments.md, "Update
        # order", "Learning rate at batch 8" and "Learning-rate decay"); translation beat no augmentation on three
        # of three seeds ("DiffAugment translation against none"), and translation with cutout beat translation
        # alone on three of three ("Cutout on top of translation"); adding colour lost on three of three ("Colour
        # on top of translation and cutout"). At the stop the EMA's half-life (1.25k-10k images) moved FID by at most
        # 1.5 points ("EMA half-life at 20 minutes"); it is kept for what is sampled before the decay.
        TrainingConfig(
            batch_size=8, g_lr=4e-4, d_lr=4e-4, augment="translation,cutout", ema_kimg=5.0, lr_decay=0.25
        ),
    ),
    # FastGAN (Liu et al. 2021; odegeasslbc/FastGAN-pytorch train.py lines 17, 60-64, 77-81, 116-117, 137, 159-160,
    # 196): skip-layer excitation in G, a D that also reconstructs the reals (networks/lightweight.py), the hinge
    # loss, DiffAugment colour and translation, batch 8, Adam 2e-4 / (0.5, 0.999) / 1e-8, z ~ N(0, 1) of 256, G
    # averaged by 0.999 per step (a half-life of 693 steps of 8 images), images resized whole to a square and
    # flipped. It counts 50,000 iterations (line 194), not epochs. Widths: ngf = ndf = 8 (the source's 64) make a
    # 64 px step about as many floating-point operations as `fast`'s (docs/reproduction.md, "lightweight").
    "lightweight": Preset(
        ModelConfig(architecture="lightweight", z_distribution="normal", z_dim=256, g_width=8, d_width=8),
        TrainingConfig(
            batch_size=8, loss="hinge", epsilon=1e-8, augment="color,translation", ema_kimg=5.54, fit="stretch"
        ),
    ),
    # Fully connected G and D after the cartoon faces project's description (its notebook is not
    # available, so widths, z and optimizer are this project's choices, not the source's).
    "dense": Preset(
        ModelConfig(architecture="dense", z_distribution="uniform", fc_units=1024),
        TrainingConfig(),
        run=SOURCE_PRECISION,
    ),
}


# Fields a preset sets otherwise at one image size, as its source does there (unless given). The Pokemon GAN
# at 256 px (Edouard99/GAN Models/gan256.py at 06d4eb2, with the notebook's ngf = ndf = 128): G from 1024 at
# 4x4 halving to 32 at 128x128 (lines 72-96), D from 32 at 128x128 doubling to 1024 at 4x4 (lines 123-145), and
# minibatch discrimination adding 4 filters (line 126) where gan64.py adds 2.
AT_IMAGE_SIZE = {
    (preset, 256): {"g_width": 32, "d_width": 32, "minibatch_kernels": 4} for preset in ("pokemon", "pokemon-wgan")
}


# The batch size a preset's learning rates were tuned at. A run of that preset at another batch
# scales each rate it is not given by sqrt(batch / tuned): the learning-rate part of the
# square-root scaling rule for Adam (Malladi et al. 2022, "On the SDEs and Scaling Rules for
# Adaptive Gradient Algorithms", arXiv:2205.10287). Measured on `fast` at batch 64 for 20 minutes
# when its base rate was 2e-4 (docs/experiments.md, "Batch size at equal minutes"); from the base
# of 4e-4 the rule gives batch 64 1.13e-3, which beat half of it at 50 epochs on 3 of 3 seeds ("The
# used-by command at 50 epochs").
LR_TUNED_BATCH = {"fast": 8}


def _tuned_batch_other_than(preset: str, batch_size: int) -> int | None:
    """The batch `preset`'s rates were tuned at, when it has one and `batch_size` differs from it."""
    tuned = LR_TUNED_BATCH.get(preset)
    return None if tuned in (None, batch_size) else tuned


def batch_scaled_rates(preset: str, batch_size: int, given: dict) -> dict:
    """The learning rates of `preset` at `batch_size` that `given` (field -> value) does not set."""
    tuned = _tuned_batch_other_than(preset, batch_size)
    if tuned is None:
        return {}
    training = PRESETS[preset].training
    factor = math.sqrt(batch_size / tuned)
    return {name: getattr(training, name) * factor for name in ("g_lr", "d_lr") if name not in given}


def batch_note(config: Config) -> str | None:
    """The line a run starts with when its batch differs from the one its preset was tuned at."""
    t = config.training
    tuned = _tuned_batch_other_than(config.preset, t.batch_size)
    if tuned is None:
        return None
    base = PRESETS[config.preset].training
    return (f"batch {t.batch_size}: {config.preset} was tuned at batch {tuned} with learning rates {base.g_lr:g}; "
            f"other batches scale them by sqrt(batch / {tuned}) unless given (here g_lr {t.g_lr:.3g}, d_lr {t.d_lr:.3g}). "
            f"In 20-minute runs on one core of a 2-core CPU, batches of 64 and 256 saw about as many images as "
            f"batch {tuned}, so a seventh and less of its updates, and scored a worse FID "
            f"(docs/experiments.md, \"Batch size at equal minutes\").")


def source_precision(preset: str) -> str | None:
    """The precision `preset` keeps unless --precision is given (SOURCE_PRECISION), or None: auto."""
    return PRESETS[preset].run.get("precision")


def precision_note(config: Config) -> str | None:
    """The line a reproduction starts with when it keeps its source's float32 (SOURCE_PRECISION)."""
    if source_precision(config.preset) != config.precision:
        return None
    return (f"precision {config.precision}, as {config.preset}'s source trained: on the toy faces bfloat16 covered "
            f"fewer modes on 3 of 3 seeds (docs/reproduction.md); --precision auto trades that for speed.")


def decay_note(config: Config) -> str | None:
    """The line a run starts with when its learning rates decay: over what, and how to turn it off."""
    share = config.training.lr_decay
    if share <= 0:
        return None
    span = (f"the last {share * config.max_minutes:g} of its {config.max_minutes:g} minutes (--max_minutes), or of "
            f"its {config.epochs} epochs if those end first" if config.max_minutes > 0
            else f"the last {share * config.epochs:g} of its {config.epochs} epochs")
    return (f"learning rates fall linearly to 0 over {span} (--lr_decay {share:g}; 0 keeps them constant). "
            f"A resumed run trains the minutes left, on the same schedule.")


def resolve(preset: str, overrides: dict) -> Config:
    """Builds the config of `preset` with `overrides` (field name -> value) applied.

    Field names are unique across Config, ModelConfig and TrainingConfig, so flags
    can carry the same names.
    """
    if preset not in PRESETS:
        raise UserError(f"unknown model preset {preset!r}; choose from {sorted(PRESETS)}")
    model, training, run = PRESETS[preset]
    groups = {
        "model": {f.name for f in dataclasses.fields(ModelConfig)},
        "training": {f.name for f in dataclasses.fields(TrainingConfig)},
        "top": {f.name for f in dataclasses.fields(Config)} - {"model", "training"},
    }
    split = {name: {} for name in groups}
    for key, value in overrides.items():
        for name, fields in groups.items():
            if key in fields:
                split[name][key] = value
                break
        else:
            raise UserError(f"unknown configuration field {key!r}")
    size = split["model"].get("image_size", model.image_size)
    for name, value in AT_IMAGE_SIZE.get((preset, size), {}).items():
        split["model"].setdefault(name, value)
    if "batch_size" in split["training"]:
        split["training"].update(batch_scaled_rates(preset, split["training"]["batch_size"], split["training"]))
    config = Config(
        preset=preset,
        model=dataclasses.replace(model, **split["model"]),
        training=dataclasses.replace(training, **split["training"]),
        **{**run, **split["top"]},
    )
    validate(config)
    return config


def validate(config: Config) -> None:
    """Rules between fields; raises UserError with one clear sentence."""
    m, t = config.model, config.training
    if m.image_size not in IMAGE_SIZES:
        raise UserError(f"image_size must be one of {IMAGE_SIZES}, got {m.image_size}")
    if t.balance not in BALANCE_RULES:
        raise UserError(f"balance must be one of {BALANCE_RULES}, got {t.balance!r}")
    if t.loss == "wasserstein" and not m.critic:
        raise UserError("the wasserstein loss needs a linear critic (critic=True, as in --model wgan)")
    if t.loss not in LOSSES:
        raise UserError(f"loss must be one of {LOSSES}, got {t.loss!r}")
    if t.loss != "minimax" and t.balance != "none":
        raise UserError(f"--balance {t.balance} compares or swaps the minimax (BCE) losses; use --loss minimax with it")
    if t.loss != "minimax" and t.label_smoothing:
        raise UserError("label smoothing applies to the minimax loss only")
    if t.update_order not in UPDATE_ORDERS:
        raise UserError(f"update_order must be one of {UPDATE_ORDERS}, got {t.update_order!r}")
    if t.update_order == "simultaneous" and t.balance in ("margin", "boost"):
        raise UserError(f"--balance {t.balance} repeats D or G updates one after the other; use --update_order alternating")
    if m.architecture not in ARCHITECTURE_NAMES:
        raise UserError(f"architecture must be one of {ARCHITECTURE_NAMES}, got {m.architecture!r}")
    if m.architecture == "lightweight" and m.image_size == 32:
        raise UserError("--model lightweight starts at 64 px (FastGAN's skip-layer excitation joins 4x4 to 64x64 "
                        "features); give --image_size 64, 128 or 256")
    if m.architecture == "lightweight" and (m.minibatch_kernels or m.d_norm != "batch" or m.spectral_norm):
        raise UserError("the lightweight networks are FastGAN's: spectral and batch norm throughout, no minibatch "
                        "discrimination; --minibatch_kernels, --d_norm and --spectral_norm do not apply to them")
    if m.init not in INITS or m.minibatch_place not in MINIBATCH_PLACES:
        raise UserError(f"init must be one of {INITS} and minibatch_place one of {MINIBATCH_PLACES}")
    if m.minibatch_place == "first_block" and m.architecture != "dcgan":
        raise UserError("the convolutional minibatch discrimination (Pokemon GAN) is implemented for the dcgan discriminator")
    if t.r1_gamma > 0 and t.loss == "wasserstein":
        raise UserError("the R1 penalty regularises the minimax discriminator; WGAN uses --gp_weight")
    if m.z_predictor and m.architecture != "illustration":
        raise UserError("the z-predictor reads the IllustrationGAN generator's FC features; use --model illustration")
    if m.upsampling not in UPSAMPLING:
        raise UserError(f"upsampling must be one of {UPSAMPLING}, got {m.upsampling!r}")
    if m.upsampling != "transposed" and m.architecture != "dcgan":
        raise UserError("--upsampling applies to the dcgan generator (--model dcgan or fast)")
    if m.spectral_norm and m.architecture != "dcgan":
        raise UserError("spectral normalisation is implemented for the dcgan discriminator (--model dcgan or fast)")
    if m.framework not in FRAMEWORKS or FRAMEWORKS[m.framework] not in (None, m.architecture):
        allowed = {name: arch for name, arch in FRAMEWORKS.items() if name}
        raise UserError(f"framework {m.framework!r} does not fit architecture {m.architecture!r}; one of {allowed} or ''")
    if t.fit not in FITS:
        raise UserError(f"fit must be one of {FITS}, got {t.fit!r}")
    if t.optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer must be one of {OPTIMIZERS}, got {t.optimizer!r}")
    if m.d_norm not in D_NORMS:
        raise UserError(f"d_norm must be one of {D_NORMS}, got {m.d_norm!r}")
    if m.d_norm != "batch" and m.architecture in ("dense", "keras_margin"):
        raise UserError("the dense discriminator has no batch norm to remove; --d_norm applies to dcgan, fast, illustration")
    fixed, adaptive = ({p.strip() for p in policy.split(",") if p.strip()} for policy in (t.augment, t.ada_augment))
    if fixed | adaptive:
        unknown = sorted((fixed | adaptive) - set(AUGMENTATIONS))
        if unknown:
            raise UserError(f"unknown augmentation {unknown}; choose from {AUGMENTATIONS}")
    if fixed & adaptive:
        raise UserError(f"{sorted(fixed & adaptive)} is in both --augment (every image) and --ada_augment (adaptive)")
    if not 0 < t.ada_target < 1:
        raise UserError(f"ada_target is a target for the mean sign of D(x) on reals, in (0, 1); got {t.ada_target}")
    if config.precision not in PRECISIONS:
        raise UserError(f"precision must be one of {PRECISIONS}, got {config.precision!r}")
    if config.strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {config.strategy!r}")


def dumps(config: Config) -> str:
    return json.dumps(config.to_json(), indent=2, sort_keys=True)
