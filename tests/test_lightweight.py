"""The lightweight (FastGAN) networks, their reconstruction term and the preset, end to end."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from illustration_gan import UserError, generate, run_folder
from illustration_gan import config as config_lib
from illustration_gan.config import ModelConfig
from illustration_gan.networks import build_networks
from illustration_gan.networks.lightweight import GLU, DownBlock, SkipLayerExcitation, SpectralNormProjection
from illustration_gan.training import seeds, terms

SMALL = dict(architecture="lightweight", g_width=4, d_width=4, z_dim=16)


def _networks(size):
    keras.utils.set_random_seed(0)
    return build_networks(ModelConfig(image_size=size, **SMALL))


@pytest.mark.parametrize("size, excitations, decoded", [(64, 1, (64, 32)), (128, 2, (128, 64)), (256, 3, (128, 128))])
def test_shapes_excitations_and_reconstructions_at_each_size(size, excitations, decoded):
    nets = _networks(size)
    z = nets.generator.sample_latents(2, tf.constant([1, 2], tf.int64))
    images = nets.generator(z, training=True)
    assert images.shape == (2, size, size, 3) and float(tf.reduce_max(tf.abs(images))) <= 1.0
    scores, features = nets.discriminator(images, training=True, return_features=True)
    assert scores.shape == (2,) and scores.dtype == tf.float32
    assert features["8"].shape[:3] == (2, 8, 8) and features["16"].shape[:3] == (2, 16, 16)
    # G gates its 64, 128, 256 px features from those 16x smaller; D its 8, 16, 32 px ones from those 8x larger.
    assert len(nets.generator.excite) == excitations and len(nets.discriminator.excite) == excitations
    pairs = nets.discriminator.reconstruct(features, images, quadrant=1, training=True)
    assert [made.shape for made, _ in pairs] == [(2, s, s, 3) for s in decoded]
    assert all(made.shape == target.shape for made, target in pairs)


def test_32_px_and_options_outside_the_design_are_refused():
    with pytest.raises(UserError, match="starts at 64 px"):
        config_lib.resolve("lightweight", {"image_size": 32})
    for option in ({"d_norm": "none"}, {"minibatch_kernels": 4}, {"spectral_norm": True}):
        with pytest.raises(UserError, match="do not apply"):
            config_lib.resolve("lightweight", option)


def test_the_preset_follows_fastgan_and_adds_the_reconstruction_term():
    config = config_lib.resolve("lightweight", {})
    t = config.training
    assert (t.loss, t.batch_size, t.g_lr, t.d_lr, t.beta1, t.beta2) == ("hinge", 8, 2e-4, 2e-4, 0.5, 0.999)
    assert t.augment == "color,translation" and config.model.z_dim == 256 and config.model.z_distribution == "normal"
    assert 0.5 ** (t.batch_size / (t.ema_kimg * 1000)) == pytest.approx(0.999, abs=1e-6)  # FastGAN's per-step decay
    assert [(term.name, term.weight) for term in terms.make_terms(config)] == [("reconstruction", 1.0)]


def test_excitation_scales_each_channel_of_the_big_map_by_a_gate_from_the_small_one():
    keras.utils.set_random_seed(1)
    layer = SkipLayerExcitation(6)
    small = tf.random.stateless_normal((2, 8, 8, 5), [1, 2])
    big = tf.random.stateless_normal((2, 16, 16, 6), [3, 4])
    gate = (layer(small, big) / big).numpy()
    np.testing.assert_allclose(gate, np.broadcast_to(gate[:, :1, :1], gate.shape), rtol=1e-4)  # one value per channel
    assert (gate > 0).all() and (gate < 1).all()
    changed = tf.concat([small[:1], 3.0 * small[1:]], axis=0)
    new_gate = (layer(changed, big) / big).numpy()
    np.testing.assert_allclose(new_gate[0], gate[0], rtol=1e-5)  # each image gated by its own small map
    assert np.abs(new_gate[1] - gate[1]).max() > 1e-3


def test_layers_round_trip_their_config():
    for layer in (GLU(), SkipLayerExcitation(6), DownBlock(4), SpectralNormProjection(8)):
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(again) is type(layer) and again.get_config() == layer.get_config()


def test_the_discriminator_reloads_with_its_decoders(tmp_path):
    discriminator = _networks(64).discriminator
    images = tf.random.stateless_uniform((2, 64, 64, 3), [5, 6], -1, 1)
    path = tmp_path / "d.keras"
    discriminator.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    for model in (discriminator, reloaded):
        scores, features = model(images, return_features=True)
        (whole, _), (part, _) = model.reconstruct(features, images, quadrant=2)
        if model is discriminator:
            expected = scores, whole, part
    for got, want in zip((scores, whole, part), expected):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


def test_the_part_decoder_reads_the_quadrant_its_target_is_cut_from():
    discriminator = _networks(64).discriminator
    # Images and 16x16 features whose four quadrants hold the constants 0, 1, 2, 3.
    quadrants = np.kron(np.array([[0.0, 1.0], [2.0, 3.0]], np.float32), np.ones((32, 32), np.float32))
    images = tf.constant(np.broadcast_to(quadrants[None, :, :, None] / 4, (1, 64, 64, 3)))
    _, features = discriminator(images, return_features=True)
    features["16"] = tf.constant(np.broadcast_to(quadrants[None, ::4, ::4, None], features["16"].shape))
    for quadrant in range(4):
        (whole, whole_target), (part, target) = discriminator.reconstruct(features, images, quadrant)
        np.testing.assert_array_equal(whole_target.numpy(), images.numpy())
        np.testing.assert_array_equal(target.numpy(), np.full((1, 32, 32, 3), quadrant / 4, np.float32))
        alone = discriminator.decoder_part(tf.fill((1, 8, 8, features["16"].shape[-1]), float(quadrant)))
        np.testing.assert_allclose(part.numpy(), alone.numpy(), atol=1e-6)


def _smooth_images(count, size, seed):
    coarse = tf.random.stateless_uniform((count, 4, 4, 3), [seed, 0], -0.8, 0.8)
    return tf.image.resize(coarse, (size, size), "bilinear")


def test_the_reconstruction_term_is_the_decoders_squared_error_and_falls_as_d_learns():
    nets = _networks(64)
    images = _smooth_images(4, 64, 7)
    term = terms.Reconstruction(1.0)
    optimizer = keras.optimizers.Adam(2e-3)
    variables = nets.discriminator.trainable_variables
    values = []
    for step in range(25):
        seed = lambda salt, step=step: tf.constant([step, salt], tf.int64)  # noqa: E731
        with tf.GradientTape() as tape:
            scores, features = nets.discriminator(images, training=True, return_features=True)
            # A training call moves each spectral norm's u one power-iteration step: keep it to call again.
            state = [v.numpy() for v in nets.discriminator.non_trainable_variables]
            forward = terms.Forward(fake=images, real=images, real_scores=scores, fake_scores=scores, real_gradients=None,
                                    seed=seed, real_seen=images, real_features=features)
            per_example = term.per_example(forward, nets)
            loss = tf.reduce_mean(per_example)
        if step == 0:
            for variable, value in zip(nets.discriminator.non_trainable_variables, state):
                variable.assign(value)
            quadrant = tf.random.stateless_uniform([], seed(seeds.RECONSTRUCTION), 0, 4, dtype=tf.int32)
            pairs = nets.discriminator.reconstruct(features, images, quadrant, training=True)
            expected = sum(np.mean((made.numpy() - target.numpy()) ** 2, axis=(1, 2, 3)) for made, target in pairs)
            np.testing.assert_allclose(per_example.numpy(), expected, rtol=1e-5)
        grads = tape.gradient(loss, variables)  # the scoring head has none: it does not reconstruct
        optimizer.apply(*zip(*[(g, v) for g, v in zip(grads, variables) if g is not None]))
        values.append(float(loss))
    # Below what the best image-blind output (each target pixel's batch mean) would score: the decoders
    # draw each image from D's features of it, not an average face.
    whole = images.numpy()
    parts = [whole[:, :32, :32], whole[:, :32, 32:], whole[:, 32:, :32], whole[:, 32:, 32:]]
    blind = np.var(whole, axis=0).mean() + min(np.var(part, axis=0).mean() for part in parts)
    assert values[-1] < 0.5 * values[0] and values[-1] < blind, (values, blind)


def test_the_preset_trains_its_decoders_through_train_py_and_refuses_32_px(tmp_path, real_faces):
    from test_training import run_cli_at_once

    runs = tmp_path / "runs"
    trained, refused = run_cli_at_once(
        ["--TYPE", "train", "--model", "lightweight", "--path", str(real_faces), "--epochs", "1", "--run_root", str(runs),
         "--precision", "float32"],
        ["--TYPE", "train", "--model", "lightweight", "--dry_run"],  # the toy faces' default of 32 px
        timeout=600,  # the step's graph takes a minute to build on a loaded CPU
    )
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = list(runs.iterdir())
    (record,) = run_folder.read_jsonl(run_dir / "stats.jsonl")
    assert record["d_updates"] == 8 and record["g_updates"] == 8  # 64 faces at batch 8
    assert np.isfinite(record["reconstruction"]) and record["reconstruction"] > 0
    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["config"]["model"]["architecture"] == "lightweight"
    assert (run_dir / "fakes_000001.png").is_file()
    images = generate.load_sampler(str(run_dir)).sample_uint8(3, seed=1)
    assert images.shape == (3, 64, 64, 3)
    # The decoders learn from the reconstruction term alone: their batch norms' betas, 0 at the start, moved.
    discriminator = build_networks(run_folder.read_config(str(run_dir)).model).discriminator
    checkpoint = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    tf.train.Checkpoint(discriminator=discriminator).restore(checkpoint).expect_partial()
    decoders = discriminator.decoder.trainable_variables + discriminator.decoder_part.trainable_variables
    betas = [v.numpy() for v in decoders if v.path.endswith("beta")]
    assert len(betas) == 5 and all(np.abs(beta).max() > 0 for beta in betas)
    assert refused.returncode == 2 and "error: --model lightweight starts at 64 px" in refused.stderr
    assert "Traceback" not in refused.stderr
