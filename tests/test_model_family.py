"""Every preset and regime trains a short epoch on real faces and leaves a usable generator."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from illustration_gan import config as config_lib
from illustration_gan import UserError, data, generate, run_folder, training
from illustration_gan.networks import build_networks

TINY = dict(image_size=32, g_width=8, d_width=8, fc_units=32, z_dim=16, batch_size=16, epochs=1)


@pytest.fixture(scope="module")
def faces_source(tmp_path_factory):
    from conftest import require_shared

    faces = require_shared("anime_faces")
    folder = tmp_path_factory.mktemp("faces")
    for i in range(48):
        (folder / f"{i}.jpg").write_bytes((faces / f"{i}.jpg").read_bytes())
    return data.scan(str(folder))


@pytest.mark.parametrize("preset", sorted(config_lib.PRESETS))
def test_each_preset_trains_and_its_generator_reloads(preset, faces_source, tmp_path):
    overrides = dict(TINY)
    if preset == "illustration":
        overrides["minibatch_kernels"] = 8
    if preset == "lightweight":  # it starts at 64 px
        overrides["image_size"] = 64
    config = config_lib.resolve(preset, overrides)
    run_dir = str(tmp_path / preset)
    trainer = training.train(config, faces_source, run_dir, tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(os.path.join(run_dir, "stats.jsonl"))
    assert np.isfinite(record["d_loss"]) and np.isfinite(record["g_loss"])
    if preset == "keras-margin":  # the margin rule may repeat updates on a batch
        assert record["d_updates"] >= 3 and record["g_updates"] >= 3 and "margin_repeats" in record
    else:
        assert record["d_updates"] == 3
    if preset == "illustration":
        assert np.isfinite(record["zpred_loss"])
    if preset in ("wgan", "pokemon-wgan"):
        assert record["g_updates"] == 1  # n_critic 3: G updates on the first of every three steps
        weights = np.concatenate([v.numpy().ravel() for v in trainer.discriminator.trainable_variables])
        assert np.abs(weights).max() <= 0.01 + 1e-7  # clipped after every critic step
    elif preset != "keras-margin":
        assert record["g_updates"] == 3
    sampler = generate.load_sampler(run_dir)
    images = sampler.sample_uint8(5, seed=1)
    assert images.shape == (5, config.model.image_size, config.model.image_size, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, sampler.sample_uint8(5, seed=1))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(balance="monitor", monitor_ratio=100.0),  # D loss never exceeds 100x G loss: D never updates
        dict(balance="margin", margin=0.0, label_smoothing=True),
        dict(balance="monitor", update_order="simultaneous"),
        dict(balance="boost"),
    ],
)
def test_regimes_run_in_the_compiled_step(overrides, faces_source, tmp_path):
    config = config_lib.resolve("dcgan", {**TINY, **overrides})
    run_dir = str(tmp_path / "run")
    trainer = training.train(config, faces_source, run_dir, tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(os.path.join(run_dir, "stats.jsonl"))
    assert np.isfinite(record["d_loss"])
    if overrides.get("balance") == "monitor" and "monitor_ratio" in overrides:
        assert record["d_updates"] == 1 and record["g_updates"] == 3  # only the first step updates D
    if overrides.get("balance") == "margin":
        assert record["margin_repeats"] >= 1 and record["d_updates"] + record["g_updates"] == 6 + record["margin_repeats"]
    assert trainer.train_steps.experimental_get_tracing_count() == 1  # decisions never retrace the step


def test_wgan_gradient_penalty_variant_trains(faces_source, tmp_path):
    config = config_lib.resolve("wgan", {**TINY, "gp_weight": 10.0, "clip_weights": 0.0, "optimizer": "adam",
                                         "g_lr": 1e-4, "d_lr": 1e-4, "beta1": 0.0, "beta2": 0.9})
    training.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    assert np.isfinite(record["gradient_penalty"]) and record["gradient_penalty"] >= 0


def test_r1_penalty_variant_trains_and_records_the_penalty(faces_source, tmp_path):
    config = config_lib.resolve("fast", {**TINY, "r1_gamma": 1.0})
    training.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    assert np.isfinite(record["r1_penalty"]) and record["r1_penalty"] > 0


def test_r1_penalty_is_refused_with_the_wasserstein_loss():
    with pytest.raises(UserError, match="R1"):
        config_lib.resolve("wgan", {"r1_gamma": 1.0})


def test_hinge_loss_with_resize_convolutions_trains(faces_source, tmp_path):
    config = config_lib.resolve("fast", {**TINY, "loss": "hinge", "upsampling": "resize"})
    training.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    # Scores start near 0, where the hinge D loss is 1 + 1 (the minimax one would be 2 log 2 = 1.39).
    assert 1.6 < record["d_loss"] < 2.4
    # Raw scores near 0 (about 0.1 and -0.04 here), not sigmoid probabilities near 0.5.
    assert abs(record["d_real"]) < 0.4 and abs(record["d_fake"]) < 0.4
    assert np.isfinite(record["g_loss"])


@pytest.mark.parametrize(
    "preset, variant",
    [("fast", {"spectral_norm": True}), ("illustration", {"d_norm": "none"})],  # fast has d_norm "none" already
    ids=["spectral_norm", "illustration_d_norm_none"],
)
def test_discriminators_without_batch_norm_train(preset, variant, faces_source, tmp_path):
    config = config_lib.resolve(preset, {**TINY, **variant})
    training.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    assert np.isfinite(record["d_loss"]) and np.isfinite(record["g_loss"])


def test_spectral_norm_is_refused_where_it_is_not_implemented():
    with pytest.raises(UserError, match="spectral"):
        config_lib.resolve("illustration", {"spectral_norm": True})
