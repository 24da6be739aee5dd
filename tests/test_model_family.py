"""Every preset and regime trains a short epoch on real faces and leaves a usable generator."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from illustration_gan import config as config_lib
from illustration_gan import UserError, data, generate, run_folder, training_loop
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
    config = config_lib.resolve(preset, overrides)
    run_dir = str(tmp_path / preset)
    trainer = training_loop.train(config, faces_source, run_dir, tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(os.path.join(run_dir, "stats.jsonl"))
    assert np.isfinite(record["d_loss"]) and np.isfinite(record["g_loss"])
    assert record["d_updates"] == 3
    if preset == "illustration":
        assert np.isfinite(record["zpred_loss"])
    if preset == "wgan":
        assert record["g_updates"] == 1  # n_critic 3: G updates on the third step only
        weights = np.concatenate([v.numpy().ravel() for v in trainer.discriminator.trainable_variables])
        assert np.abs(weights).max() <= 0.01 + 1e-7  # clipped after every critic step
    else:
        assert record["g_updates"] == 3
    sampler = generate.load_sampler(run_dir)
    images = sampler.sample_uint8(5, seed=1)
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, sampler.sample_uint8(5, seed=1))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(balance="monitor", monitor_ratio=100.0),  # D loss never exceeds 100x G loss: D never updates
        dict(balance="margin", margin=0.0, label_smoothing=True),
        dict(balance="boost", noisy_labels=0.5),
        dict(minibatch_kernels=4, minibatch_dims=3),
    ],
)
def test_regimes_run_in_the_compiled_step(overrides, faces_source, tmp_path):
    config = config_lib.resolve("dcgan", {**TINY, **overrides})
    run_dir = str(tmp_path / "run")
    trainer = training_loop.train(config, faces_source, run_dir, tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(os.path.join(run_dir, "stats.jsonl"))
    assert np.isfinite(record["d_loss"])
    if overrides.get("balance") == "monitor":
        assert record["d_updates"] == 0 and record["g_updates"] == 3
    if overrides.get("balance") == "margin":
        assert record["d_updates"] + record["g_updates"] >= 3  # each step updates at least one network
    assert trainer.train_step.experimental_get_tracing_count() == 1  # decisions never retrace the step


def test_wgan_gradient_penalty_variant_trains(faces_source, tmp_path):
    config = config_lib.resolve("wgan", {**TINY, "gp_weight": 10.0, "clip_weights": 0.0, "optimizer": "adam",
                                         "g_lr": 1e-4, "d_lr": 1e-4, "beta1": 0.0, "beta2": 0.9})
    training_loop.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    assert np.isfinite(record["gradient_penalty"]) and record["gradient_penalty"] >= 0


def test_r1_penalty_variant_trains_and_records_the_penalty(faces_source, tmp_path):
    config = config_lib.resolve("fast", {**TINY, "r1_gamma": 1.0})
    training_loop.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    assert np.isfinite(record["r1_penalty"]) and record["r1_penalty"] > 0


def test_r1_penalty_is_refused_with_the_wasserstein_loss():
    with pytest.raises(UserError, match="R1"):
        config_lib.resolve("wgan", {"r1_gamma": 1.0})


def test_mode_seeking_variant_trains_and_records_its_loss(faces_source, tmp_path):
    config = config_lib.resolve("fast", {**TINY, "mode_seeking": 1.0})
    training_loop.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    assert np.isfinite(record["mode_seeking_loss"]) and record["mode_seeking_loss"] > 0


def test_hinge_loss_with_resize_convolutions_trains(faces_source, tmp_path):
    config = config_lib.resolve("fast", {**TINY, "loss": "hinge", "upsampling": "resize"})
    training_loop.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
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
    training_loop.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    assert np.isfinite(record["d_loss"]) and np.isfinite(record["g_loss"])


def test_spectral_norm_is_refused_where_it_is_not_implemented():
    with pytest.raises(UserError, match="spectral"):
        config_lib.resolve("illustration", {"spectral_norm": True})


def _discriminate(d_batch, real, fake, r1=False):
    keras.utils.set_random_seed(0)
    config = config_lib.resolve("fast", {**TINY, "d_batch": d_batch, "d_norm": "batch"})
    trainer = training_loop.GANTrainer(config, tf.distribute.get_strategy())
    return trainer, trainer._discriminate(real, fake, r1)[:3]


def test_a_joint_d_batch_shares_batch_norm_statistics_between_reals_and_fakes():
    real = tf.random.stateless_uniform([8, 32, 32, 3], [1, 2], -1, 1)
    fake, other_fake = (tf.random.stateless_uniform([8, 32, 32, 3], [s, 3], -1, 1) * 0.5 for s in (4, 5))
    _, (separate_real, _, _) = _discriminate("separate", real, fake)
    _, (separate_real_again, _, _) = _discriminate("separate", real, other_fake)
    trainer, (joint_real, joint_fake, _) = _discriminate("joint", real, fake)
    _, (joint_real_other, _, _) = _discriminate("joint", real, other_fake)
    # Separate batches: the reals' scores cannot depend on the fakes. Joint: they do, through the statistics.
    np.testing.assert_allclose(separate_real, separate_real_again, atol=1e-6)
    assert np.abs(np.asarray(joint_real) - np.asarray(joint_real_other)).max() > 1e-4
    both = trainer.discriminator(tf.concat([real, fake], 0), training=True)
    np.testing.assert_allclose(tf.concat([joint_real, joint_fake], 0), both, atol=1e-5)


def test_r1_gradients_in_a_joint_d_batch_are_those_of_the_real_scores():
    real = tf.random.stateless_uniform([8, 32, 32, 3], [1, 2], -1, 1)
    fake = tf.random.stateless_uniform([8, 32, 32, 3], [4, 3], -1, 1)
    trainer, (_, _, grads) = _discriminate("joint", real, fake, r1=True)
    with tf.GradientTape() as tape:
        tape.watch(real)
        real_scores = trainer.discriminator(tf.concat([real, fake], 0), training=True)[:8]
    np.testing.assert_allclose(grads, tape.gradient(real_scores, real), atol=1e-5)
    assert np.abs(np.asarray(grads)).max() > 0


def test_joint_d_batch_with_r1_trains(faces_source, tmp_path):
    # A joint batch matters through D's batch norm, which `fast` no longer has.
    config = config_lib.resolve("fast", {**TINY, "d_batch": "joint", "r1_gamma": 1.0, "d_norm": "batch"})
    training_loop.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    assert np.isfinite(record["d_loss"]) and np.isfinite(record["r1_penalty"]) and record["r1_penalty"] > 0


@pytest.mark.parametrize("d_batch, split", [("separate", False), ("joint", False), ("separate", True)])
def test_feature_matching_variant_trains_and_records_its_loss(d_batch, split, faces_source, tmp_path):
    config = config_lib.resolve(
        "fast",
        {**TINY, "feature_matching": 1.0, "d_batch": d_batch, "feature_matching_split": split, "d_norm": "batch"},
    )
    training_loop.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    assert np.isfinite(record["g_loss"]) and np.isfinite(record["feature_matching_loss"])
    if not split:  # a squared gap; the split estimate can fall below zero
        assert record["feature_matching_loss"] > 0


def test_packed_discriminator_with_minibatch_stddev_trains_with_losses_per_pack(faces_source, tmp_path):
    config = config_lib.resolve("fast", {**TINY, "pack": 2, "minibatch_stddev": 4})
    training_loop.train(config, faces_source, str(tmp_path / "run"), tf.distribute.get_strategy())
    (record,) = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    # 8 scores per batch of 16: averaged over 8, the first steps' D loss is near 2 log 2 = 1.39 (over 16, half that).
    assert 1.0 < record["d_loss"] < 1.8
    assert 0.25 < record["d_real"] < 0.75 and 0.25 < record["d_fake"] < 0.75
    assert np.isfinite(record["g_loss"])


@pytest.mark.parametrize("preset", sorted(config_lib.PRESETS))
def test_each_discriminator_returns_the_hidden_features_it_scores(preset):
    networks = build_networks(config_lib.resolve(preset, {**TINY, "minibatch_kernels": 0}).model)
    images = tf.random.stateless_uniform([4, 32, 32, 3], [0, 1], -1, 1)
    scores, hidden = networks.discriminator(images, return_features=True)
    np.testing.assert_allclose(scores, networks.discriminator(images), atol=1e-6)
    assert hidden.shape[0] == 4 and len(hidden.shape) == 2
    # Without minibatch features, the score is the output unit applied to exactly these features.
    head = networks.discriminator.score
    np.testing.assert_allclose(scores, tf.squeeze(hidden @ head.kernel, -1) + head.bias, atol=1e-4)
