"""End-to-end: training through the command line (python train.py) on real faces: run folder, resume, generate,
nearest, refusals, stops, strategies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, require_shared
from illustration_gan import config as config_lib
from illustration_gan import data, run_folder, training
from illustration_gan.training import augment

# The update order does not matter to what these tests check, and the simultaneous step compiles faster;
# the mirrored-strategy test puts the alternating one (the presets' default) under two replicas.
SMALL = ["--model", "dcgan", "--image_size", "32", "--g_width", "16", "--d_width", "16", "--z_dim", "32",
         "--batch_size", "16", "--update_order", "simultaneous", "--precision", "float32"]  # auto: test_cli


def train_py(args) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *args]


def run_cli(*args, check=True, timeout=240, env_override=None, **kwargs):
    result = subprocess.run(
        train_py(args), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env=env_override or os.environ, **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"train.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def run_cli_at_once(*commands, timeout=240):
    """`run_cli(*args, check=False)` for each independent `args` of `commands`, started together:
    most of each is importing TensorFlow, which the processes do side by side."""
    processes = [subprocess.Popen(train_py(args), cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for args in commands]
    results = []
    for args, process in zip(commands, processes):
        stdout, stderr = process.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return results


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One epoch on 64 real faces plus four bad files, through the CLI."""
    faces = require_shared("anime_faces")
    root = tmp_path_factory.mktemp("cli")
    folder = root / "faces"
    folder.mkdir()
    for i in range(64):
        (folder / f"{i}.jpg").write_bytes((faces / f"{i}.jpg").read_bytes())
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    (folder / "text.png").write_text("not an image")
    from PIL import Image

    Image.fromarray(np.full((50, 60), 128, np.uint8)).save(folder / "gray.png")
    Image.fromarray(np.zeros((40, 40, 4), np.uint8)).save(folder / "rgba.png")
    runs = root / "runs"
    result = run_cli("--TYPE", "train", "--path", str(folder), "--epochs", "1", "--run_root", str(runs), *SMALL)
    (run_dir,) = list(runs.iterdir())
    return run_dir, folder, result


def test_train_writes_a_complete_run_folder(trained_run):
    run_dir, _, result = trained_run
    assert run_dir.name == "00000-faces-dcgan"
    for name in ["training_options.json", "stats.jsonl", "fakes_000001.png", "losses.png", "progress.gif",
                 "generator.keras", "log.txt"]:
        assert (run_dir / name).is_file(), name
    checkpoint = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert checkpoint and tf.train.load_variable(checkpoint, "step/.ATTRIBUTES/VARIABLE_VALUE") == 4
    assert list((run_dir / "tensorboard").iterdir())
    options = json.loads((run_dir / "training_options.json").read_text())
    assert options["dataset"]["num_images"] == 66  # 64 faces + the gray and the RGBA image
    assert options["dataset"]["skipped_files"] == 2
    assert options["config"]["training"]["batch_size"] == 16 and options["versions"]["tensorflow"] == tf.__version__
    (record,) = run_folder.read_jsonl(run_dir / "stats.jsonl")
    assert record["epoch"] == 1 and record["step"] == 4 and record["d_updates"] == 4 and record["g_updates"] == 4
    assert np.isfinite(record["d_loss"]) and 0 < record["d_real"] < 1 and record["images_per_second"] > 0
    assert "epoch 1/1" in result.stdout and "img/s" in result.stdout
    assert "corrupt.jpg" in result.stderr and "text.png" in result.stderr  # bad files named in warnings


def test_read_config_returns_the_recorded_config_and_names_a_missing_options_file(trained_run, tmp_path):
    run_dir, _, _ = trained_run
    config = run_folder.read_config(str(run_dir))
    assert config.training.batch_size == 16 and config.model.architecture == "dcgan"
    with pytest.raises(config_lib.UserError, match="cannot find training_options.json"):
        run_folder.read_config(str(tmp_path))


def test_resume_continues_counters_and_appends_stats(trained_run):
    run_dir, _, _ = trained_run
    run_cli("--TYPE", "train", "--resume", str(run_dir), "--epochs", "2", "--keep_checkpoints", "1")
    records = run_folder.read_jsonl(run_dir / "stats.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["step"] == 8
    # --keep_checkpoints applies to the continued run: only the newest checkpoint is left.
    assert [os.path.basename(p) for p in run_folder.checkpoint_prefixes(str(run_dir / "checkpoints"))] == ["ckpt-8"]
    assert (run_dir / "fakes_000002.png").is_file()


def test_generate_writes_exactly_n_images_reproducibly_and_never_overwrites(trained_run, tmp_path):
    run_dir, _, _ = trained_run
    out = tmp_path / "gen"
    run_cli("--TYPE", "generate", "--run_dir", str(run_dir), "--img_num", "5", "--output", str(out), "--seed", "3")
    pngs = sorted(p.name for p in out.glob("seed*.png"))
    assert len(pngs) == 5 and (out / "grid.png").is_file()
    first = (out / pngs[0]).read_bytes()
    # Another seed into the same folder is refused; the same seed with --overwrite rewrites the same images.
    # (Continuing an interrupted folder and the refusals' other cases: tests/test_generate.py, in process.)
    out2 = tmp_path / "gen2"
    other, from_checkpoint = run_cli_at_once(
        ["--TYPE", "generate", "--run_dir", str(run_dir), "--img_num", "5", "--output", str(out), "--seed", "4"],
        ["--TYPE", "generate", "--checkpoint", str(run_dir / "checkpoints"), "--img_num", "5", "--output", str(out2),
         "--seed", "3"],
    )
    assert other.returncode != 0 and "already exist" in other.stderr and "Traceback" not in other.stderr
    assert from_checkpoint.returncode == 0 and len(list(out2.glob("seed*.png"))) == 5, from_checkpoint.stderr
    run_cli("--TYPE", "generate", "--run_dir", str(run_dir), "--img_num", "5", "--output", str(out), "--seed", "3",
            "--overwrite")
    assert (out / pngs[0]).read_bytes() == first  # same seed, same image


def test_generate_defaults_to_a_new_folder_in_the_newest_run(trained_run):
    run_dir, _, _ = trained_run
    run_cli("--TYPE", "generate", "--run_root", str(run_dir.parent), "--img_num", "3")
    run_cli("--TYPE", "generate", "--run_root", str(run_dir.parent), "--img_num", "3")
    folders = sorted(p.name for p in run_dir.glob("generated-*"))
    assert folders == ["generated-000", "generated-001"]
    assert len(list((run_dir / "generated-001").glob("seed*.png"))) == 3


def test_flags_fail_with_one_clear_line(tmp_path, real_faces):
    empty = tmp_path / "empty"
    empty.mkdir()
    bad, none, clocks, split, big, hinge, pruned, dry = run_cli_at_once(
        ["--TYPE", "train", "--image_size", "48"],
        ["--TYPE", "train", "--path", str(empty), "--run_root", str(tmp_path / "r")],
        ["--TYPE", "train", "--strategy", "multiworker", "--max_minutes", "5", "--run_dir", "x"],
        ["--TYPE", "train", "--path", str(real_faces), "--batch_size", "15", "--strategy", "mirrored",
         "--cpu_replicas", "2", "--run_root", str(tmp_path / "p")],
        ["--TYPE", "train", "--path", str(real_faces), "--batch_size", "1000", "--run_root", str(tmp_path / "b")],
        ["--TYPE", "train", "--loss", "hinge", "--balance", "margin", "--dry_run"],
        ["--TYPE", "train", "--feature_matching", "0.1", "--dry_run"],
        ["--TYPE", "train", "--model", "wgan", "--batch_size", "8", "--dry_run"],
    )
    assert bad.returncode != 0 and "image_size" in bad.stderr and "Traceback" not in bad.stderr
    assert none.returncode != 0 and "no images" in none.stderr and "Traceback" not in none.stderr
    assert clocks.returncode != 0 and "--max_minutes is per process" in clocks.stderr and "Traceback" not in clocks.stderr
    assert split.returncode != 0 and "does not split evenly over 2 replicas" in split.stderr
    assert "Traceback" not in split.stderr
    assert big.returncode == 2 and "fewer than one batch of 1000" in big.stderr and "Traceback" not in big.stderr
    assert not (tmp_path / "b").exists() and not (tmp_path / "p").exists()  # refused before any run folder
    assert hinge.returncode != 0 and "use --loss minimax" in hinge.stderr and "Traceback" not in hinge.stderr
    assert pruned.returncode != 0 and "feature_matching" in pruned.stderr and "Traceback" not in pruned.stderr
    assert dry.returncode == 0, dry.stderr
    config = json.loads(dry.stdout)
    assert config["training"]["batch_size"] == 8 and config["training"]["loss"] == "wasserstein"


def test_nearest_writes_the_mse_picture_and_says_it_skipped_the_inception_one(trained_run, tmp_path):
    run_dir, folder, _ = trained_run
    env = {k: v for k, v in os.environ.items() if k != "ILLUSTRATION_GAN_FID_WEIGHTS"}
    env["HOME"] = str(tmp_path)  # no FID weights in ~/.cache
    output = tmp_path / "nearest.png"
    result = run_cli("--TYPE", "nearest", "--run_dir", str(run_dir), "--path", str(folder), "--output", str(output),
                     env_override=env)
    assert output.is_file() and "pixel MSE" in result.stdout
    assert "skipped the picture by Inception-feature distance" in result.stdout
    assert not (tmp_path / "nearest-inception.png").exists()
    missing = run_cli("--TYPE", "nearest", "--run_dir", str(run_dir), "--fid_weights", str(tmp_path / "no.npz"),
                      "--output", str(tmp_path / "other.png"), check=False, env_override=env)
    assert missing.returncode == 2 and "no.npz" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "other.png").exists()  # refused before any picture


def test_nearest_by_inception_features_reuses_the_real_feature_cache(trained_run, tmp_path):
    from PIL import Image

    from illustration_gan import evaluation

    weights = require_shared("fid_inception_v3_2015-12-05.npz")
    run_dir, folder, _ = trained_run
    cache = tmp_path / "cache"
    first = evaluation.nearest_picture(str(run_dir), str(folder), str(tmp_path / "a.png"), count=4, k=3,
                                       metric="inception", fid_weights=str(weights), cache_dir=str(cache))
    assert len(list(cache.iterdir())) == 1  # the 66 readable images' features, stored for the next call
    second = evaluation.nearest_picture(str(run_dir), str(folder), str(tmp_path / "b.png"), count=4, k=3,
                                        metric="inception", fid_weights=str(weights), cache_dir=str(cache))
    a, b = np.asarray(Image.open(first)), np.asarray(Image.open(second))
    assert a.shape[0] > a.shape[1] / 2 and np.array_equal(a, b)  # 1 + k rows of 4; cached features: same neighbours
    with pytest.raises(evaluation.UserError, match="already exists"):
        evaluation.nearest_picture(str(run_dir), str(folder), first, metric="inception", fid_weights=str(weights),
                                   cache_dir=str(cache))
    (tmp_path / "c-inception.png").write_bytes(b"kept")  # the second picture exists: refused before the first
    refused = run_cli("--TYPE", "nearest", "--run_dir", str(run_dir), "--path", str(folder), "--fid_weights",
                      str(weights), "--output", str(tmp_path / "c.png"), check=False)
    assert refused.returncode == 2 and "c-inception.png already exists" in refused.stderr
    assert not (tmp_path / "c.png").exists() and (tmp_path / "c-inception.png").read_bytes() == b"kept"


def _in_process_config(**overrides):
    base = dict(image_size=32, g_width=8, d_width=8, batch_size=16, epochs=1, z_dim=16, update_order="simultaneous")
    base.update(overrides)
    return config_lib.resolve("dcgan", base)


def test_time_limit_checkpoints_mid_epoch_and_resume_finishes_it(real_faces, tmp_path):
    source = data.scan(str(real_faces))
    strategy = tf.distribute.get_strategy()
    run_dir = str(tmp_path / "run")
    trainer = training.train(_in_process_config(max_minutes=1e-9), source, run_dir, strategy)
    assert int(trainer.step.numpy()) == 1 and int(trainer.epoch.numpy()) == 0
    assert not os.path.exists(os.path.join(run_dir, "stats.jsonl"))
    trainer = training.train(_in_process_config(), source, run_dir, strategy, resume=True)
    assert int(trainer.step.numpy()) == 4 and int(trainer.epoch.numpy()) == 1
    assert [r["step"] for r in run_folder.read_jsonl(os.path.join(run_dir, "stats.jsonl"))] == [4]


def test_non_finite_loss_stops_with_a_clear_message(real_faces, tmp_path):
    source = data.scan(str(real_faces))
    config = _in_process_config(d_lr=1e30, g_lr=1e30, beta1=0.0)
    with pytest.raises(training.TrainingDiverged, match="non-finite loss"):
        training.train(config, source, str(tmp_path / "run"), tf.distribute.get_strategy())


def test_sigterm_writes_a_checkpoint_before_exiting(tmp_path):
    faces = require_shared("anime_faces")
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(256):
        (folder / f"{i}.jpg").write_bytes((faces / f"{i}.jpg").read_bytes())
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "--TYPE", "train", "--path", str(folder), "--epochs", "50",
         "--run_root", str(tmp_path / "runs"), *SMALL],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 180
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/fakes_000001.png")):
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "checkpoint written" in stdout and "--resume" in stdout
    (run_dir,) = list((tmp_path / "runs").iterdir())
    checkpoint = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    step = tf.train.load_variable(checkpoint, "step/.ATTRIBUTES/VARIABLE_VALUE")
    assert step >= 16  # at least the first epoch (256 / 16 steps) was saved


@pytest.mark.parametrize(
    "extra",
    # ADA: 4 epochs of 4 steps reach its first adjustment (every 256 / 16 = 16 steps).
    [["--spectral_norm", "--ada_augment", "color", "--epochs", "4", "--balance", "margin"]],
    ids=["spectral_norm_ada_margin"],
)
def test_mirrored_strategy_over_two_logical_cpus(real_faces, tmp_path, extra):
    # G keeps its batch norm (per-replica statistics). Spectral norm's power-iteration vector is a non-trainable variable assigned in replica context;
    # ADA's p is assigned in cross-replica context and read by every replica; the margin rule runs
    # phases (strategy.run with all-reduces) inside a tf.while_loop.
    result = run_cli("--TYPE", "train", "--path", str(real_faces), "--epochs", "1", "--strategy", "mirrored",
                     "--cpu_replicas", "2", "--run_root", str(tmp_path / "runs"), *SMALL, "--update_order",
                     "alternating", *extra)
    assert "2 replica(s)" in result.stdout
    (run_dir,) = list((tmp_path / "runs").iterdir())
    records = run_folder.read_jsonl(run_dir / "stats.jsonl")
    record = records[-1]
    assert record["step"] == 4 * len(records) and np.isfinite(record["g_loss"])
    if "--balance" in extra:
        assert all("margin_repeats" in r for r in records)
    if "--ada_augment" in extra:
        # One adjustment from 0: up by 256 images / ADA_KIMG thousand, or clipped at 0.
        assert min(abs(record["augment_p"] - p) for p in (0.0, 256 / (augment.ADA_KIMG * 1000))) < 1e-7
        assert all(-1 <= r["real_sign"] <= 1 for r in records)  # a mean over the global batch, not a sum over replicas
        checkpoint = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
        assert tf.train.load_variable(checkpoint, "real_sign_sum/.ATTRIBUTES/VARIABLE_VALUE") == 0.0  # it adjusted


def test_learning_rate_scale_is_flat_then_falls_linearly_to_zero():
    scale = training.learning_rate_scale
    assert [scale(p, 0.2) for p in (0.0, 0.8, 0.9, 1.0, 1.5)] == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    assert scale(0.99, 0.0) == 1.0  # 0 = off


def test_lr_decay_lowers_both_rates_by_the_share_of_steps_done(real_faces, tmp_path):
    source = data.scan(str(real_faces))  # 64 images, batch 16: 4 steps per epoch, 8 in all
    config = _in_process_config(epochs=2, lr_decay=0.5, g_lr=1e-3, d_lr=4e-3)
    trainer = training.train(config, source, str(tmp_path / "run"), tf.distribute.get_strategy())
    stats = run_folder.read_jsonl(str(tmp_path / "run" / "stats.jsonl"))
    # The rate is set before each step from the steps done: 3/8 (flat) and 7/8 (a quarter left of the half).
    assert [r["g_lr"] for r in stats] == pytest.approx([1e-3, 0.25e-3])
    assert float(trainer.d_optimizer.learning_rate.numpy()) == pytest.approx(1e-3)


def test_fid_every_keeps_the_best_generator_and_its_checkpoint_and_generate_and_serve_use_it(real_faces, tmp_path):
    """--fid_every through the command line (it once crashed at the end of every run): FID each
    epoch into stats.jsonl and metric-fid.jsonl, generator-best.keras and checkpoints-best/ kept,
    the hooks after it (the GIF) still run, the last lines name the best epoch; generate --best,
    generate --checkpoint RUN/checkpoints-best and serve's --best use them."""
    weights = require_shared("fid_inception_v3_2015-12-05.npz")
    run = tmp_path / "run"
    result = run_cli("--TYPE", "train", "--path", str(real_faces), "--run_dir", str(run), "--epochs", "2",
                     *SMALL, "--fid_every", "1", "--num_samples", "32", "--num_real", "64",
                     "--fid_weights", str(weights), timeout=600)
    rows = run_folder.read_jsonl(str(run / "metric-fid.jsonl"))
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["fid32"] > 0 for r in rows)
    assert all("fid32" in r for r in run_folder.read_jsonl(str(run / run_folder.STATS_FILE)))
    best = min(rows, key=lambda r: r["fid32"])
    assert f"best fid32 {best['fid32']:.2f} at epoch {best['epoch']}" in result.stdout
    assert (run / "progress.gif").exists() and (run / run_folder.BEST_GENERATOR_FILE).exists()
    kept = run / run_folder.BEST_CHECKPOINT_DIR
    assert tf.train.latest_checkpoint(str(kept)).endswith(f"ckpt-{best['step']}")
    for args in (["--best"], ["--checkpoint", str(kept)]):
        out = tmp_path / f"out{len(args)}"
        run_cli("--TYPE", "generate", "--run_dir", str(run), "--img_num", "4", "--output", str(out), *args)
        assert len(list(out.glob("*.png"))) == 5  # 4 images and the grid
    both = run_cli("--TYPE", "generate", "--run_dir", str(run), "--best", "--checkpoint", str(kept), check=False)
    assert both.returncode == 2 and "--best and --checkpoint" in both.stderr
    from illustration_gan.serve import create_app, explorer_of

    best_model = explorer_of(create_app(str(run), "", best=True)).sampler.generator
    saved = tf.keras.models.load_model(str(run / run_folder.BEST_GENERATOR_FILE), compile=False)
    assert all(np.array_equal(a, b) for a, b in zip(best_model.get_weights(), saved.get_weights()))


def test_the_default_watch_scores_fid_keeps_the_best_and_says_when_it_is_off(real_faces, tmp_path):
    """Issue 51 item 1: without --fid_every a run is watched when the FID weights are found (FID at
    epoch ends within ILLUSTRATION_GAN_WATCH_SHARE of its time; 1 = every epoch), keeps its best
    and names it; without weights it says in one line that it is not watched; --fid_every 0 is off;
    a share that is not one is refused in one line."""
    weights = require_shared("fid_inception_v3_2015-12-05.npz")
    common = ["--TYPE", "train", "--path", str(real_faces), "--epochs", "2", *SMALL, "--num_samples", "32",
              "--num_real", "64"]
    env = {**os.environ, "ILLUSTRATION_GAN_WATCH_SHARE": "1", "ILLUSTRATION_GAN_FID_WEIGHTS": str(weights)}
    runs = {name: tmp_path / name for name in ("watched", "off", "missing", "bad_share")}
    envs = {"watched": env, "off": env, "missing": {**env, "ILLUSTRATION_GAN_FID_WEIGHTS": str(tmp_path / "no.npz")},
            "bad_share": {**env, "ILLUSTRATION_GAN_WATCH_SHARE": "5%"}}
    processes = {name: subprocess.Popen(train_py([*common, "--run_dir", str(run)] + (["--fid_every", "0"] if name == "off"
                                                                                     else [])),
                                        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=envs[name]) for name, run in runs.items()}
    out = {name: p.communicate(timeout=600) + (p.returncode,) for name, p in processes.items()}

    stdout, _, code = out["watched"]
    assert code == 0 and "watch: FID on 32 samples at epoch ends, within 100% of the run's time" in stdout
    rows = run_folder.read_jsonl(str(runs["watched"] / "metric-fid.jsonl"))
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["fid32"] > 0 for r in rows)
    best = min(rows, key=lambda r: r["fid32"])
    assert f"best fid32 {best['fid32']:.2f} at epoch {best['epoch']}" in stdout
    assert (runs["watched"] / run_folder.BEST_GENERATOR_FILE).exists()

    stdout, _, code = out["missing"]
    assert code == 0 and "watch: off (" in stdout and str(tmp_path / "no.npz") in stdout
    assert not (runs["missing"] / "metric-fid.jsonl").exists()
    stdout, _, code = out["off"]
    assert code == 0 and "watch:" not in stdout and not (runs["off"] / "metric-fid.jsonl").exists()
    _, stderr, code = out["bad_share"]
    assert code != 0 and "ILLUSTRATION_GAN_WATCH_SHARE=5% is not a share" in stderr and "Traceback" not in stderr


def test_training_takes_only_callbacks(tmp_path):
    with pytest.raises(TypeError, match="is not a training.Callback"):
        training.train(None, None, str(tmp_path / "run"), tf.distribute.get_strategy(), callbacks=[object()])
