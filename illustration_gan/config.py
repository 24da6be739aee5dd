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

from illustration_gan import UserError

IMAGE_SIZES = (32, 64, 128, 256)
BALANCE_RULES = ("none", "margin", "monitor", "boost")
UPSAMPLING = ("transposed", "resize")
LOSSES = ("minimax", "hinge", "wasserstein")
D_NORMS = ("batch", "none")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the networks (and nothing about training)."""

    architecture: str = "illustration"  # key of networks.ARCHITECTURES
    image_size: int = 64
    z_dim: int = 100
    z_distribution: str = "truncated_normal"  # "normal" | "truncated_normal" | "uniform"
    g_width: int = 64  # channels of the last generator level; doubles per level up to 512
    d_width: int = 64  # channels of the first discriminator level
    fc_units: int = 1024  # fully connected layers (illustration, dense)
    minibatch_kernels: int = 0  # minibatch discrimination B (0 = off)
    minibatch_dims: int = 5  # minibatch discrimination C
    z_predictor: bool = False  # IllustrationGAN's auxiliary network predicting z
    critic: bool = False  # linear critic output (WGAN) instead of a logit for BCE
    spectral_norm: bool = False  # spectrally normalised D weights, no D batch norm (SNGAN; dcgan only)
    d_norm: str = "batch"  # D's hidden layers: "batch" norm (DCGAN) | "none" (conv + bias; dcgan, illustration)
    upsampling: str = "transposed"  # dcgan G: "transposed" 4x4 stride-2 convs | "resize" (nearest 2x + 3x3 conv)

    @property
    def levels(self) -> int:
        """Number of 2x resolution steps from 4x4 to image_size."""
        return int(math.log2(self.image_size)) - 2


@dataclass(frozen=True)
class TrainingConfig:
    """The optimisation recipe and the regime deciding when D and G update."""

    batch_size: int = 64  # global batch, split across replicas
    loss: str = "minimax"  # "minimax" (non-saturating G) | "hinge" | "wasserstein"
    optimizer: str = "adam"  # "adam" | "rmsprop"
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    label_smoothing: bool = False
    noisy_labels: float = 0.0
    balance: str = "none"
    margin: float = 1.0
    monitor_ratio: float = 0.8
    n_critic: int = 1  # discriminator steps per generator step
    clip_weights: float = 0.0  # WGAN weight clipping (0 = off)
    gp_weight: float = 0.0  # WGAN-GP gradient penalty (0 = off)
    r1_gamma: float = 0.0  # R1 penalty on real images, gamma / 2 * ||grad D(x)||^2 (0 = off)
    zpred_weight: float = 1.0
    augment: str = ""  # DiffAugment policy, e.g. "color,translation,cutout" ("" = off)
    ada_augment: str = ""  # DiffAugment transforms applied with ADA's adaptive probability ("" = off)
    ada_target: float = 0.6  # ADA's target for the mean sign of D's real logits
    ema_kimg: float = 0.0  # half-life of the generator's weight average, in thousands of images (0 = off)
    lr_decay: float = 0.0  # final share of the run (epochs or --max_minutes) over which both rates fall to 0


@dataclass(frozen=True)
class Config:
    """One training run: the model, the recipe, the data and the run's bookkeeping."""

    preset: str = "illustration"
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    path: str = ""  # image folder, TFRecord folder or glob; "" = built-in toy faces
    epochs: int = 50
    seed: int = 0
    strategy: str = "default"  # "default" | "mirrored" | "multiworker"
    precision: str = "float32"
    run_root: str = "runs"
    max_minutes: float = 0.0  # stop (with a checkpoint) after this wall time; 0 = no limit
    keep_checkpoints: int = 3
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


def from_dict(cls, data: dict):
    """`cls(**data)` without the keys `cls` does not know: options removed since a run was
    recorded (e.g. `pack`, `feature_matching`, pruned in issue 21) are ignored."""
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


# Each preset reproduces one source. Defaults not listed come from the dataclasses.
PRESETS: dict[str, tuple[ModelConfig, TrainingConfig]] = {
    # IllustrationGAN (Boesen, 2016): FC stack + bilinear upsampling G, max-pool D with
    # minibatch discrimination, and the z-predictor; Adam 2e-4 / 0.5, batch 32.
    "illustration": (
        ModelConfig(
            architecture="illustration",
            z_distribution="truncated_normal",
            minibatch_kernels=100,
            minibatch_dims=5,
            z_predictor=True,
        ),
        TrainingConfig(batch_size=32),
    ),
    # DCGAN (Radford et al. 2015) as in the PyTorch DCGAN tutorial.
    "dcgan": (
        ModelConfig(architecture="dcgan", z_distribution="normal"),
        TrainingConfig(),
    ),
    # WGAN (Arjovsky et al. 2017) on the DCGAN networks, as the Pokemon GAN project runs it.
    "wgan": (
        ModelConfig(architecture="dcgan", z_distribution="normal", critic=True),
        TrainingConfig(
            loss="wasserstein",
            optimizer="rmsprop",
            g_lr=5e-5,
            d_lr=5e-5,
            n_critic=3,
            clip_weights=0.01,
        ),
    ),
    # Not from a source: what measured best at 20 minutes of a 2-core CPU (README, "Quality at a
    # CPU budget"): the DCGAN at half width (a quarter of the FLOPs, ~4x the images per minute)
    # with resize-convolutions in G, no batch norm in D, batch 8 (in 20 minutes the number of
    # updates, not images, limits a GAN), DiffAugment translation on D's inputs, and an EMA
    # generator for samples.
    "fast": (
        ModelConfig(
            architecture="dcgan", z_distribution="normal", g_width=32, d_width=32, upsampling="resize", d_norm="none"
        ),
        TrainingConfig(batch_size=8, augment="translation", ema_kimg=5.0),
    ),
    # Fully connected G and D, as in the cartoon faces project.
    "dense": (
        ModelConfig(architecture="dense", z_distribution="uniform", fc_units=1024),
        TrainingConfig(),
    ),
}


def resolve(preset: str, overrides: dict) -> Config:
    """Builds the config of `preset` with `overrides` (field name -> value) applied.

    Field names are unique across Config, ModelConfig and TrainingConfig, so flags
    can carry the same names.
    """
    if preset not in PRESETS:
        raise UserError(f"unknown model preset {preset!r}; choose from {sorted(PRESETS)}")
    model, training = PRESETS[preset]
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
    config = Config(
        preset=preset,
        model=dataclasses.replace(model, **split["model"]),
        training=dataclasses.replace(training, **split["training"]),
        **split["top"],
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
    if t.loss != "minimax" and (t.label_smoothing or t.noisy_labels):
        raise UserError("label smoothing and noisy labels apply to the minimax loss only")
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
    if m.d_norm not in D_NORMS:
        raise UserError(f"d_norm must be one of {D_NORMS}, got {m.d_norm!r}")
    if m.d_norm != "batch" and m.architecture == "dense":
        raise UserError("the dense discriminator has no batch norm to remove; --d_norm applies to dcgan, fast, illustration")
    fixed, adaptive = ({p.strip() for p in policy.split(",") if p.strip()} for policy in (t.augment, t.ada_augment))
    if fixed | adaptive:
        from illustration_gan.training.augment import POLICIES

        unknown = sorted((fixed | adaptive) - set(POLICIES))
        if unknown:
            raise UserError(f"unknown augmentation {unknown}; choose from {POLICIES}")
    if fixed & adaptive:
        raise UserError(f"{sorted(fixed & adaptive)} is in both --augment (every image) and --ada_augment (adaptive)")
    if not 0 < t.ada_target < 1:
        raise UserError(f"ada_target is a target for the mean sign of D(x) on reals, in (0, 1); got {t.ada_target}")
    if config.strategy not in ("default", "mirrored", "multiworker"):
        raise UserError(f"unknown strategy {config.strategy!r}")


def dumps(config: Config) -> str:
    return json.dumps(config.to_json(), indent=2, sort_keys=True)
