"""The research helpers the experiments share (experiments/common.py)."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import common
from illustration_gan import metrics, run_folder


def test_training_minutes_count_writing_time_but_not_the_pause_before_a_resume():
    records = [
        {"epoch_seconds": 50.0, "wall_time": 1000.0},
        {"epoch_seconds": 50.0, "wall_time": 1060.0},  # 10 s of grid and checkpoint writing counted
        {"epoch_seconds": 50.0, "wall_time": 9000.0},  # resumed hours later: only the epoch counts
        {"epoch_seconds": 50.0, "wall_time": 9055.0},
    ]
    assert common.training_minutes(records) == pytest.approx([50 / 60, 110 / 60, 160 / 60, 215 / 60])


def test_the_quality_curve_picks_the_kept_snapshot_nearest_each_minute_and_skips_minutes_not_reached():
    from experiments.quality_curve import snapshots_at

    # Ten epochs of one minute each; only the even epochs' checkpoints are kept.
    records = [{"epoch_seconds": 60.0, "wall_time": 60.0 * (i + 1), "checkpoint": f"ckpt-{i + 1}", "step": i + 1}
               for i in range(10)]
    kept = {f"ckpt-{i}" for i in (2, 4, 6, 8, 10)}
    chosen = snapshots_at(records, kept, [1.2, 2, 4.9, 5.2, 10.4, 20])
    assert [(round(m), r["checkpoint"]) for m, r in chosen] == [(2, "ckpt-2"), (4, "ckpt-4"), (6, "ckpt-6"), (10, "ckpt-10")]
    assert snapshots_at(records, set(), [2]) == []


def test_the_quality_curve_reads_back_only_points_scored_the_same_way(tmp_path):
    from experiments.quality_curve import scored_before

    curve = str(tmp_path / "metric-curve.jsonl")
    assert scored_before(curve) == {}
    point = {"checkpoint": "ckpt-750", "generator": "ema_generator", "num_samples": 5000, "fid": 80.0}
    run_folder.append_jsonl(curve, point)
    run_folder.append_jsonl(curve, {**point, "num_samples": 2000, "fid": 95.0})
    scored = scored_before(curve)
    assert scored[("ckpt-750", "ema_generator", 5000)]["fid"] == 80.0
    assert scored[("ckpt-750", "ema_generator", 2000)]["fid"] == 95.0
    assert ("ckpt-750", "generator", 5000) not in scored


def test_the_quality_curve_draws_its_points_and_sample_rows(tmp_path):
    import cv2

    from experiments.quality_curve import draw

    points = [{"minutes": m, "fid": f, "precision": 0.4, "recall": r} for m, f, r in ((10, 120.0, 0.01), (40, 70.0, 0.05))]
    rows = [run_folder.image_grid(np.full((10, 16, 16, 3), 40 * i, np.uint8), columns=10) for i in range(2)]
    path = str(tmp_path / "curve.png")
    draw(points, rows, "5k", "a run", path)
    picture = cv2.imread(path)
    assert picture is not None and picture.shape[0] > picture.shape[1] / 3


def test_both_rewrites_of_the_strided_convolution_equal_it():
    import tensorflow as tf

    from experiments.conv_shapes import conv_as_matmul, conv_on_cells

    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(2, 8, 6, 5)), tf.float32)
    kernel = tf.constant(rng.normal(size=(4, 4, 5, 7)), tf.float32)
    direct = tf.nn.conv2d(x, kernel, 2, "SAME").numpy()
    assert direct.shape == (2, 4, 3, 7)
    np.testing.assert_allclose(conv_as_matmul(x, kernel).numpy(), direct, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv_on_cells(x, kernel).numpy(), direct, rtol=1e-4, atol=1e-4)


def test_grid_tiles_recovers_the_images_of_a_grid():
    images = np.random.default_rng(0).integers(0, 256, size=(7, 5, 5, 3), dtype=np.uint8)
    tiles = common.grid_tiles(run_folder.image_grid(images), 5)
    assert tiles.shape == (9, 5, 5, 3)
    np.testing.assert_array_equal(tiles[:7], images)
    assert (tiles[7:] == 255).all()  # the blank cells of a 3x3 grid


def test_manifold_distances_tell_a_bunched_set_from_a_shifted_one():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(8)
    real = rng.normal(size=(400, 16))
    same = common.manifold_distances(real, rng.normal(size=(400, 16)))
    assert same["fake_radius"] == pytest.approx(same["real_radius"], rel=0.1)
    assert same["real_to_fake"] == pytest.approx(same["real_to_real"], rel=0.15)
    assert same["real_to_real"] == pytest.approx(np.median(np.sort(cdist(real, real), axis=1)[:, 1]))
    assert same["real_radius"] == pytest.approx(np.median(np.sort(cdist(real, real), axis=1)[:, 3]))
    bunched = common.manifold_distances(real, 0.2 * rng.normal(size=(400, 16)))
    assert bunched["fake_radius"] < 0.3 * bunched["real_radius"]
    shifted = common.manifold_distances(real, rng.normal(size=(400, 16)) + 1.0)
    assert shifted["fake_radius"] == pytest.approx(shifted["real_radius"], rel=0.1)
    assert shifted["real_to_fake"] > 1.2 * shifted["real_to_real"]


def test_moment_matched_recall_recovers_a_set_that_is_only_shifted_and_scaled():
    rng = np.random.default_rng(9)
    real, draw = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    offset = np.full(16, 1.5)
    _, plain_recall = metrics.precision_recall(real, draw)
    _, shifted_recall = metrics.precision_recall(real, draw + offset)
    shifted = common.moment_matched_recall(real, draw + offset)
    assert shifted_recall < 0.3 * plain_recall
    assert shifted["recall_mean_matched"] == pytest.approx(plain_recall, abs=0.05)
    assert shifted["mean_term"] == pytest.approx(16 * 1.5**2, rel=0.1)
    squeezed = common.moment_matched_recall(real, 0.3 * draw + offset)
    assert squeezed["recall_mean_matched"] < 0.3 * plain_recall  # the offset is gone; the narrow spread is not
    assert squeezed["recall_moments_matched"] == pytest.approx(plain_recall, abs=0.05)
    # Collapse onto a few modes is not undone by matching two moments.
    collapsed = real[rng.integers(0, 4, size=400)] + 0.05 * draw
    assert common.moment_matched_recall(real, collapsed)["recall_moments_matched"] < 0.3 * plain_recall


def test_the_experiments_import_without_editing_sys_path():
    """Each runs as `python -m experiments.NAME` from the repo root, importing experiments.common."""
    import importlib
    import sys

    path_before = list(sys.path)
    for name in ("colour_drift", "conv_shapes", "dense_vs_conv", "matmul_grad_step", "quality_curve", "recall_diagnosis",
                 "run_progress", "sampling_modes", "subpixel_resize_conv", "weight_averaging"):
        module = importlib.import_module(f"experiments.{name}")
        assert callable(module.main)
    assert sys.path == path_before


def test_extra_averages_trail_the_live_generator_at_their_own_half_lives_and_are_saved(tmp_path, noise_faces):
    import keras
    import tensorflow as tf

    from experiments.ema_halflives import EXTRA_FILE, extra_emas_callback
    from illustration_gan import config as config_lib
    from illustration_gan import training

    config = config_lib.resolve("dcgan", dict(image_size=32, g_width=4, d_width=4, z_dim=8, batch_size=8, epochs=2,
                                              update_order="simultaneous", ema_kimg=5.0))
    run_dir = str(tmp_path / "run")
    callback = extra_emas_callback([0.001, 5.0], run_dir)
    trainer = training.train(config, noise_faces(64), run_dir, tf.distribute.get_strategy(), callbacks=[callback])

    def weights(path):
        return [w.numpy() for w in keras.saving.load_model(path, compile=False).trainable_weights]

    live = [w.numpy() for w in trainer.generator.trainable_weights]
    own = weights(f"{run_dir}/{run_folder.GENERATOR_FILE}")
    short, same = (weights(f"{run_dir}/{EXTRA_FILE.format(kimg=k)}") for k in (0.001, 5.0))
    assert all(np.array_equal(a, b) for a, b in zip(own, same, strict=True))  # the run's own rule, kept again

    def distance(average):
        return sum(float(np.abs(a - b).sum()) for a, b in zip(average, live, strict=True))

    assert distance(short) < 0.1 * distance(own)  # a 1-image half-life stays on the live weights


def test_the_lookahead_step_pulls_both_players_back_to_their_slow_weights(tmp_path, noise_faces):
    import tensorflow as tf

    from experiments.lookahead import lookahead_callback
    from illustration_gan import config as config_lib
    from illustration_gan import training

    config = config_lib.resolve("dcgan", dict(image_size=32, g_width=4, d_width=4, z_dim=8, batch_size=8, epochs=1,
                                              ema_kimg=5.0))
    faces = noise_faces(32)

    def trained(alpha, name):
        trainer = training.train(config, faces, str(tmp_path / name), tf.distribute.get_strategy(),
                                 callbacks=[lookahead_callback(1, alpha)])
        return [v.numpy() for v in (*trainer.generator.trainable_variables, *trainer.discriminator.trainable_variables)]

    initial = training.GANTrainer(config, tf.distribute.get_strategy())
    start = [v.numpy() for v in (*initial.generator.trainable_variables, *initial.discriminator.trainable_variables)]
    # alpha 0: the slow weights never move, so every update is undone. With alpha 1 the lookahead step changes
    # nothing, so the weights move: the training above did update them.
    assert all(np.array_equal(a, b) for a, b in zip(trained(0.0, "still"), start, strict=True))
    moved = trained(1.0, "moving")
    assert sum(float(np.abs(a - b).sum()) for a, b in zip(moved, start, strict=True)) > 0


def test_dense_vs_conv_counts_collapses_after_diversity_and_the_epoch_a_restart_would_take(tmp_path):
    import json

    from experiments.dense_vs_conv import score_run
    from illustration_gan import config as config_lib

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = config_lib.resolve("dense", {"image_size": 32})
    (run_dir / run_folder.OPTIONS_FILE).write_text(json.dumps({"config": config.to_json()}))
    rng = np.random.default_rng(0)
    diverse = lambda: rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)  # noqa: E731
    alike = lambda: np.repeat(rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8), 64, axis=0)  # noqa: E731
    # Epoch 1 alike before ever being diverse (an untrained G, not a collapse); collapses at epochs 3 and 5.
    for epoch, tiles in enumerate([alike(), diverse(), alike(), diverse(), alike()], start=1):
        run_folder.save_png(str(run_dir / f"fakes_{epoch:06d}.png"), run_folder.image_grid(tiles))
    (run_dir / run_folder.STATS_FILE).write_text("".join(json.dumps({"epoch": e, "epoch_seconds": 2.0 * e}) + "\n"
                                                         for e in range(1, 6)))
    reference = {"faces": 0.5, "diversity": float(np.sqrt(32 * 32 * 3 / 6)), "roughness": 1 / 6 * 2}
    scores = score_run(str(run_dir), reference, cascade=None)
    assert scores["collapses"] == 2 and scores["last_good_epoch"] == 2 and scores["epochs"] == 5
    assert scores["seconds_per_epoch"] == 6.0 and scores["faces_at_epoch"] is None
    assert 0.1 < scores["pixelation"] < 10


def test_dense_vs_conv_scores_a_dense_run_and_finds_faces_in_real_faces(tmp_path, noise_faces):
    import cv2
    import tensorflow as tf

    from experiments.dense_vs_conv import CASCADE, real_reference, score_run, table_row
    from illustration_gan import config as config_lib
    from illustration_gan import training
    from conftest import require_shared

    cascade = cv2.CascadeClassifier(str(require_shared(CASCADE.name)))
    faces = real_reference(str(require_shared("anime_faces")), cascade, size=32, count=16)
    assert faces["faces"] > 0.3 and faces["diversity"] > 0  # the detector finds faces in most real faces
    config = config_lib.resolve("dense", dict(image_size=32, fc_units=16, z_dim=8, batch_size=16, epochs=2))
    run_dir = str(tmp_path / "run")
    training.train(config, noise_faces(32), run_dir, tf.distribute.get_strategy())
    scores = score_run(run_dir, faces, cascade)
    assert scores["epochs"] == 2 and scores["seconds_per_epoch"] > 0 and 0 <= scores["faces_last"] <= 1
    assert table_row("dense", 0, scores).startswith("| dense | 0 | 2 |")
