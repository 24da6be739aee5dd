"""Growing resolution (ProGAN): the schedule, the networks at each stage, and a run through train.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from illustration_gan import UserError
from illustration_gan import config as config_lib
from illustration_gan.networks import build_networks
from illustration_gan.training import grow

ROOT = Path(__file__).resolve().parents[1]


def test_the_schedule_starts_small_fades_each_level_in_and_ends_at_full_size():
    stages = [grow.stage(p, 16, 64, share=0.5) for p in (0.0, 0.1, 0.15, 0.3, 0.4, 0.45, 0.5, 0.99)]
    assert stages[0] == (16, 1.0) and stages[1] == (16, 1.0)  # 16 alone for the first eighth
    assert stages[2][0] == 32 and stages[2][1] == pytest.approx(0.2)  # fading 32 in over the second
    assert stages[3] == (32, 1.0)  # 32 alone over the third
    assert stages[4][0] == 64 and stages[4][1] == pytest.approx(0.2)
    assert stages[5][0] == 64 and stages[5][1] == pytest.approx(0.6)
    assert stages[6] == stages[7] == (64, 1.0)


def _networks(**overrides):
    keras.utils.set_random_seed(0)
    config = config_lib.resolve("fast", {"image_size": 64, "grow_from": 16, "g_width": 4, "d_width": 4,
                                         "z_dim": 8, **overrides})
    return build_networks(config.model)


def _set(networks, resolution, blend, alpha):
    for network in networks[:2]:
        network.set_growth(resolution, blend, alpha)


def test_each_stage_gives_full_size_images_and_each_fade_starts_where_the_level_below_was():
    nets = _networks()
    z = tf.random.stateless_normal((4, 8), [1, 2])
    images = tf.random.stateless_uniform((4, 64, 64, 3), [3, 4], -1, 1)

    def run(resolution, blend, alpha):
        _set(nets, resolution, blend, alpha)
        return nets.generator(z).numpy(), nets.discriminator(images).numpy()

    g16, d16 = run(16, False, 1.0)
    assert g16.shape == (4, 64, 64, 3)
    # At 16 px the image is a 16x16 image repeated 4x4: pooling it gives it back.
    np.testing.assert_array_equal(g16[:, ::4, ::4], g16[:, 3::4, 3::4])
    g32, d32 = run(32, True, 0.0)
    np.testing.assert_allclose(g32, g16, rtol=1e-5, atol=1e-9)  # the fade starts at the level below
    np.testing.assert_allclose(d32, d16, rtol=1e-5, atol=1e-9)
    g32_half, _ = run(32, True, 0.5)
    assert np.abs(g32_half - g16).max() > 0.1 * np.abs(g16).max()  # alpha moves the image
    g64_faded, d64_faded = run(64, True, 1.0)
    g64, d64 = run(64, False, 1.0)  # the full networks alone, as without growing
    np.testing.assert_allclose(g64_faded, g64, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(d64_faded, d64, rtol=1e-5, atol=1e-9)
    assert np.abs(g64 - g16).max() > 0.1 * np.abs(g16).max()


def test_the_unused_levels_get_zero_gradients_and_a_saved_generator_keeps_its_stage(tmp_path):
    nets = _networks()
    _set(nets, 16, False, 1.0)
    with tf.GradientTape() as tape:
        score = tf.reduce_mean(nets.discriminator(nets.generator(tf.ones((2, 8)), training=True), training=True))
    from illustration_gan.training.step import gradients

    grads = gradients(tape, score, nets.generator.trainable_variables)
    used = {v.path: float(tf.reduce_sum(tf.abs(g))) for v, g in zip(nets.generator.trainable_variables, grads)}
    level = lambda name: sum(value for path, value in used.items() if name in path)  # noqa: E731
    assert level("to_rgb_16") > 0 and level("to_rgb_32") == 0

    path = str(tmp_path / "generator.keras")
    nets.generator.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.grow_resolution == 16
    np.testing.assert_allclose(loaded(tf.ones((2, 8))).numpy(), nets.generator(tf.ones((2, 8))).numpy(), atol=1e-6)


def test_growing_is_refused_where_it_does_not_apply():
    with pytest.raises(UserError, match="grow_from must be 8, 16 or 32 and below"):
        config_lib.resolve("fast", {"image_size": 32, "grow_from": 32})
    with pytest.raises(UserError, match="grows the dcgan networks"):
        config_lib.resolve("illustration", {"grow_from": 16})


def test_a_run_with_grow_from_grows_to_full_size_and_generates(tmp_path, noise_faces):
    noise_faces(40)  # 5 steps an epoch at batch 8
    run_dir = tmp_path / "run"
    base = [sys.executable, "train.py", "--run_root", str(tmp_path)]
    subprocess.run([*base, "--TYPE", "train", "--path", str(tmp_path / "faces"), "--image_size", "32", "--grow_from",
                    "8", "--g_width", "4", "--d_width", "4", "--epochs", "8", "--run_dir", str(run_dir)],
                   cwd=ROOT, check=True, capture_output=True)
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    sizes = [r["resolution"] for r in records]
    assert sizes[0] == 8 and sizes[-1] == 32 and sizes == sorted(sizes) and 16 in sizes
    assert records[-1]["alpha"] == 1.0
    subprocess.run([*base, "--TYPE", "generate", "--run_dir", str(run_dir), "--img_num", "2", "--output",
                    str(tmp_path / "out")], cwd=ROOT, check=True, capture_output=True)
    assert len(list((tmp_path / "out").glob("*.png"))) == 3  # two images and the grid
