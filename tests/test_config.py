import dataclasses
import json
from pathlib import Path

import pytest

from illustration_gan import UserError
from illustration_gan import config as config_lib


def test_presets_resolve_and_roundtrip_through_json():
    for name in config_lib.PRESETS:
        config = config_lib.resolve(name, {})
        again = config_lib.Config.from_json(json.loads(config_lib.dumps(config)))
        assert again == config
        assert again.preset == name


@pytest.mark.parametrize("field, then, now", [("upsampling", "transposed", "resize"), ("d_norm", "batch", "none")])
def test_a_fast_run_recorded_before_a_preset_change_rebuilds_as_it_trained(field, then, now):
    recorded = json.loads(config_lib.dumps(config_lib.resolve("fast", {})))
    del recorded["model"][field]  # training_options.json of a run from before the field existed
    config = config_lib.Config.from_json(recorded)
    assert getattr(config.model, field) == then
    assert getattr(config_lib.resolve("fast", {}).model, field) == now


def test_overrides_reach_the_right_group():
    config = config_lib.resolve("dcgan", {"batch_size": 8, "image_size": 32, "epochs": 3})
    assert config.training.batch_size == 8
    assert config.model.image_size == 32
    assert config.epochs == 3
    assert config.model.levels == 3


def test_presets_follow_their_sources():
    illustration = config_lib.resolve("illustration", {})
    assert illustration.model.z_predictor and illustration.model.minibatch_kernels == 100
    assert illustration.training.batch_size == 32
    wgan = config_lib.resolve("wgan", {})
    assert wgan.training.loss == "wasserstein" and wgan.training.optimizer == "rmsprop"
    assert wgan.training.clip_weights == 0.01 and wgan.training.n_critic == 3 and wgan.model.critic


def test_fast_scales_the_learning_rates_it_is_not_given_with_the_batch():
    tuned = config_lib.resolve("fast", {})
    assert tuned.training.batch_size == 8 and config_lib.batch_note(tuned) is None
    at_64 = config_lib.resolve("fast", {"batch_size": 64})
    assert at_64.training.g_lr == pytest.approx(tuned.training.g_lr * 8**0.5)
    assert at_64.training.d_lr == pytest.approx(tuned.training.d_lr * 8**0.5)
    note = config_lib.batch_note(at_64)
    assert "batch 64" in note and "sqrt(batch / 8)" in note and f"{at_64.training.g_lr:.3g}" in note
    given = config_lib.resolve("fast", {"batch_size": 32, "g_lr": 1e-4})
    assert given.training.g_lr == 1e-4 and given.training.d_lr == pytest.approx(tuned.training.d_lr * 2)
    # A resumed run resolves its recorded fields again: the rates are not scaled twice.
    flat = {**dataclasses.asdict(at_64.model), **dataclasses.asdict(at_64.training)}
    assert config_lib.resolve("fast", flat).training == at_64.training
    # Presets run as their sources did keep their rates at any batch.
    assert config_lib.resolve("dcgan", {"batch_size": 8}).training.g_lr == config_lib.resolve("dcgan", {}).training.g_lr


def test_a_decaying_run_says_over_what_and_a_constant_one_says_nothing():
    assert config_lib.resolve("fast", {}).training.lr_decay == 0.25
    by_epochs = config_lib.decay_note(config_lib.resolve("fast", {"epochs": 40}))
    assert "last 10 of its 40 epochs" in by_epochs and "--lr_decay 0.25" in by_epochs
    by_minutes = config_lib.decay_note(config_lib.resolve("fast", {"max_minutes": 20}))
    assert "last 5 of its 20 minutes" in by_minutes
    assert config_lib.decay_note(config_lib.resolve("fast", {"lr_decay": 0.0})) is None
    assert config_lib.decay_note(config_lib.resolve("dcgan", {})) is None  # the tutorial's constant rate


@pytest.mark.parametrize(
    "preset, overrides, message",
    [
        ("dcgan", {"image_size": 48}, "image_size"),
        ("dcgan", {"loss": "wasserstein"}, "critic"),
        ("dcgan", {"z_predictor": True}, "z-predictor"),
        ("illustration", {"upsampling": "resize"}, "dcgan generator"),
        ("fast", {"upsampling": "bicubic"}, "upsampling must be one of"),
        ("wgan", {"label_smoothing": True}, "minimax"),
        ("fast", {"loss": "hinge", "label_smoothing": True}, "minimax"),
        ("fast", {"balance": "margin", "update_order": "simultaneous"}, "update_order alternating"),
        ("dcgan", {"update_order": "interleaved"}, "update_order must be one of"),
        ("illustration", {"minibatch_place": "first_block"}, "dcgan discriminator"),
        ("keras-margin", {"d_norm": "none"}, "no batch norm"),
        ("fast", {"loss": "least_squares"}, "loss must be one of"),
        ("fast", {"loss": "hinge", "balance": "monitor"}, "minimax"),
        ("wgan", {"balance": "margin"}, "minimax"),
        ("fast", {"d_norm": "layer"}, "d_norm must be one of"),
        ("dense", {"d_norm": "none"}, "dense discriminator"),
        ("fast", {"pack": 2}, "unknown configuration field 'pack'"),  # pruned in issue 21
        ("fast", {"feature_matching": 0.1}, "unknown configuration field"),
        ("dcgan", {"no_such_field": 1}, "unknown"),
        ("nope", {}, "preset"),
    ],
)
def test_invalid_configs_fail_with_a_clear_message(preset, overrides, message):
    with pytest.raises(UserError, match=message):
        config_lib.resolve(preset, overrides)


def test_a_config_recorded_with_since_pruned_options_still_loads():
    """training_options.json written at b48cc7b, before pack, d_batch, feature matching, mode seeking,
    the minibatch-stddev channel and xla were removed."""
    options = json.loads((Path(__file__).parent / "data" / "run-b48cc7b" / "training_options.json").read_text())
    assert options["config"]["model"]["pack"] == 1 and "feature_matching" in options["config"]["training"]
    config = config_lib.Config.from_json(options["config"])
    assert config.preset == "fast" and config.model.g_width == 4 and config.training.batch_size == 8
    assert not hasattr(config.model, "pack") and not hasattr(config, "xla")
