"""illustration_gan/training/loop.py: resume, old run folders, and an end of epoch that survives a crash."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from illustration_gan import config as config_lib
from illustration_gan import run_folder, training
from illustration_gan.training import callbacks

OLD_RUN = Path(__file__).parent / "data" / "run-b48cc7b"


def test_a_run_folder_written_before_the_redesign_resumes(tmp_path, noise_faces):
    """The fixture is a 1-epoch `fast` run written by b48cc7b (its config still names pruned options)."""
    run_dir = tmp_path / "run"
    shutil.copytree(OLD_RUN, run_dir)
    config = run_folder.read_config(str(run_dir))
    config = config_lib.resolve(config.preset, {**_flat(config), "epochs": 2})
    source = noise_faces(16)
    trainer = training.train(config, source, str(run_dir), tf.distribute.get_strategy(), resume=True)
    assert int(trainer.epoch.numpy()) == 2 and int(trainer.step.numpy()) == 4
    records = run_folder.read_jsonl(str(run_dir / "stats.jsonl"))
    assert [r["epoch"] for r in records] == [1, 2] and np.isfinite(records[-1]["d_loss"])


class _CrashAt(training.Callback):
    """Raises at the end of one epoch, after the grid and generator are written and before the stats line."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, record):
        if epoch == self.epoch:
            raise OSError("simulated crash")


def test_a_crash_inside_the_end_of_an_epoch_resumes_at_that_epoch(tmp_path, noise_faces):
    config = _tiny(epochs=3)
    source = noise_faces(16)
    run_dir = str(tmp_path / "run")
    strategy = tf.distribute.get_strategy()
    with pytest.raises(OSError, match="simulated"):
        training.train(config, source, run_dir, strategy, callbacks=[_CrashAt(2)])
    # Epoch 2's grid was written but its checkpoint was not: the counters still say epoch 1.
    assert os.path.exists(os.path.join(run_dir, "fakes_000002.png"))
    assert tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")).endswith("ckpt-2")
    trainer = training.train(config, source, run_dir, strategy, resume=True)
    records = run_folder.read_jsonl(os.path.join(run_dir, "stats.jsonl"))
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["checkpoint"] for r in records] == ["ckpt-2", "ckpt-4", "ckpt-6"]  # named by step
    assert int(trainer.step.numpy()) == 6
    assert all(os.path.exists(os.path.join(run_dir, f"fakes_{e:06d}.png")) for e in (1, 2, 3))


def _flat(config):
    as_dict = config.to_json()
    flat = {**as_dict.pop("model"), **as_dict.pop("training"), **as_dict}
    flat.pop("preset")
    return flat


def _tiny(**overrides):
    # The update order does not matter to the loop; the simultaneous step compiles faster.
    base = dict(image_size=32, g_width=4, d_width=4, z_dim=8, batch_size=8, epochs=2, update_order="simultaneous")
    return config_lib.resolve("dcgan", {**base, **overrides})


def test_the_same_seed_trains_the_same_weights_and_another_seed_does_not(tmp_path, noise_faces):
    source = noise_faces(32)  # 4 steps: every flip and every batch counts
    strategy = tf.distribute.get_strategy()

    def weights(seed, name):
        trainer = training.train(_tiny(epochs=1, seed=seed), source, str(tmp_path / name), strategy)
        return [w.numpy() for w in trainer.generator.weights]

    first, again, other = weights(0, "a"), weights(0, "b"), weights(1, "c")
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=True))


def test_resume_skips_a_corrupt_newest_checkpoint_and_keeps_it(tmp_path, noise_faces, capsys):
    source = noise_faces(16)
    run_dir = tmp_path / "run"
    training.train(_tiny(), source, str(run_dir), tf.distribute.get_strategy())
    newest = run_dir / "checkpoints" / "ckpt-4.data-00000-of-00001"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated, as a full disk or a kill leaves it
    trainer = training.train(_tiny(epochs=3), source, str(run_dir), tf.distribute.get_strategy(), resume=True)
    assert "skipped checkpoint ckpt-4" in capsys.readouterr().out
    assert newest.exists()  # never deleted
    records = run_folder.read_jsonl(str(run_dir / "stats.jsonl"))
    assert [r["epoch"] for r in records] == [1, 2, 3] and int(trainer.step.numpy()) == 6


def test_a_resumed_split_epoch_records_the_whole_epoch(tmp_path, noise_faces):
    source = noise_faces(32)  # 4 steps per epoch
    run_dir = str(tmp_path / "run")
    strategy = tf.distribute.get_strategy()
    training.train(_tiny(epochs=1, max_minutes=1e-9), source, run_dir, strategy)  # stops after one step
    assert not os.path.exists(os.path.join(run_dir, "stats.jsonl"))
    training.train(_tiny(epochs=1), source, run_dir, strategy, resume=True)
    (record,) = run_folder.read_jsonl(os.path.join(run_dir, "stats.jsonl"))
    assert record["d_updates"] == 4 and record["g_updates"] == 4 and record["step"] == 4


def test_a_time_limit_inside_an_epoch_leaves_the_generator_it_reached(tmp_path, noise_faces):
    from illustration_gan import generate

    source = noise_faces(32)  # 4 steps per epoch
    run_dir = str(tmp_path / "run")
    trainer = training.train(_tiny(epochs=1, max_minutes=1e-9), source, run_dir, tf.distribute.get_strategy())
    assert int(trainer.step.numpy()) == 1 and int(trainer.epoch.numpy()) == 0  # no epoch finished
    saved = generate.load_sampler(run_dir).generator
    for written, trained in zip(saved.weights, trainer.sampling_generator.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(written), np.asarray(trained))


def _mount_tmpfs(path: Path, options: str) -> None:
    import subprocess

    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.decode().strip()}")


def test_a_full_disk_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, noise_faces):
    import subprocess

    source = noise_faces(16)
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=700k")
    try:
        run_dir = disk / "run"
        with pytest.raises(config_lib.UserError, match=r"could not write .*MB free.*last good checkpoint") as error:
            training.train(_tiny(epochs=200), source, str(run_dir), tf.distribute.get_strategy())
        assert "\n" not in str(error.value)
        leftovers = [p.name for p in run_dir.rglob("*") if "tmp" in p.name or p.name.endswith("_temp")]
        assert leftovers == []
        assert not (run_dir / "progress.gif").exists() or (run_dir / "progress.gif").stat().st_size > 0
        newest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
        assert newest is not None
        epoch = int(tf.train.load_variable(newest, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))
        assert epoch >= 1 and [r["epoch"] for r in run_folder.read_jsonl(str(run_dir / "stats.jsonl"))][:epoch] == list(
            range(1, epoch + 1)
        )
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_read_only_run_folder_is_refused_before_anything_is_built(tmp_path, noise_faces):
    import subprocess

    source = noise_faces(16)
    disk = tmp_path / "ro"
    _mount_tmpfs(disk, "ro,size=100k")
    try:
        with pytest.raises(config_lib.UserError, match="cannot write into"):
            training.train(_tiny(), source, str(disk / "run"), tf.distribute.get_strategy())
        with pytest.raises(config_lib.UserError, match="cannot write into"):
            run_folder.new_run_dir(str(disk / "runs"), "faces", "fast")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


class _SignalAt(training.Callback):
    """Sends SIGINT to this process before the call of the step that starts at `step` or later."""

    def __init__(self, step: int):
        self.step, self.sent_at = step, None

    def on_steps_begin(self, step):
        if step >= self.step and self.sent_at is None:
            self.sent_at = step
            os.kill(os.getpid(), signal.SIGINT)


def test_a_signal_during_a_call_stops_after_it_and_the_run_resumes_to_the_same_step(tmp_path, noise_faces):
    source = noise_faces(400)  # 50 steps per epoch
    strategy = tf.distribute.get_strategy()
    run_dir = str(tmp_path / "run")
    signal_at = _SignalAt(3)
    with pytest.raises(training.TrainingInterrupted):
        training.train(_tiny(epochs=1), source, run_dir, strategy, callbacks=[signal_at])
    newest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    stopped_at = int(newest.rsplit("-", 1)[1])
    assert signal_at.sent_at >= 3 and signal_at.sent_at < stopped_at < 50  # the call in flight finished, no more
    trainer = training.train(_tiny(epochs=1), source, run_dir, strategy, resume=True)
    (record,) = run_folder.read_jsonl(os.path.join(run_dir, "stats.jsonl"))
    assert int(trainer.step.numpy()) == 50 and record["step"] == 50
    assert record["d_updates"] == 50 and record["g_updates"] == 50  # both parts of the epoch counted once


def test_the_pace_grows_calls_to_about_a_second_and_never_past_the_deadline():
    from illustration_gan.training.loop import Pace

    pace = Pace()
    assert pace.steps(100) == 1
    pace.record(1, 30.0)  # the first call compiles: not a measure of the step
    assert pace.steps(100) == 1
    for _ in range(6):
        pace.record(pace.steps(10_000), 0.01 * pace.steps(10_000))  # 10 ms a step
    assert pace.steps(10_000) == 100 and pace.steps(7) == 7
    soon = Pace(deadline=time.time() + 0.05)
    soon.record(1, 1.0)
    for _ in range(5):
        soon.record(1, 0.01)
    assert soon.steps(10_000) <= 6  # 100 a call otherwise
    cluster = Pace(fixed=10)  # workers of a cluster: the same count every call, whatever the timings
    for seconds in (30.0, 0.01, 5.0):
        assert cluster.steps(100) == 10 and cluster.steps(3) == 3
        cluster.record(10, seconds)


def test_a_run_records_what_precision_auto_chose_and_ends_naming_its_folder_and_files(tmp_path, noise_faces,
                                                                                       capsys):
    from illustration_gan.training import precision

    run_dir = str(tmp_path / "run")
    config = _tiny(epochs=1, precision="auto")
    training.train(config, noise_faces(16), run_dir, tf.distribute.get_strategy())
    options = run_folder.read_json(os.path.join(run_dir, "training_options.json"))
    expected = precision.choose(config)
    assert options["config"]["precision"] == options["precision_auto"]["chosen"] == expected.policy
    assert options["precision_auto"]["reason"] == expected.reason and len(options["precision_auto"]["threads"]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert f"precision auto: {expected.policy} ({expected.reason}; force another with --precision)" in lines
    assert lines[-1] == (f"run folder {run_dir}: open fakes_000001.png, losses.png, progress.gif, generator.keras; "
                         f"more faces: python train.py --TYPE generate --run_dir {run_dir}")
    assert keras.mixed_precision.global_policy().name == "float32"  # the run does not leave its policy behind


def test_max_minutes_is_the_whole_runs_budget_across_a_resume(tmp_path, noise_faces, capsys):
    source = noise_faces(32)  # 4 steps per epoch
    run_dir = str(tmp_path / "run")
    strategy = tf.distribute.get_strategy()
    budget = _tiny(epochs=50, max_minutes=1e-9)
    stopped = int(training.train(budget, source, run_dir, strategy).step.numpy())
    assert "resume" in capsys.readouterr().out and stopped >= 1
    # The budget is spent: resuming with it trains nothing; a larger budget goes on.
    again = training.train(budget, source, run_dir, strategy, resume=True)
    assert int(again.step.numpy()) == stopped
    assert "nothing left to train" in capsys.readouterr().out
    assert int(training.train(_tiny(epochs=1), source, run_dir, strategy, resume=True).step.numpy()) == 4
    # Each epoch's record counts the minutes of every part before it.
    training.train(_tiny(epochs=2), source, run_dir, strategy, resume=True)
    first, second = run_folder.read_jsonl(os.path.join(run_dir, "stats.jsonl"))
    assert second["training_minutes"] * 60 >= first["training_minutes"] * 60 + second["epoch_seconds"]


def test_the_progress_line_times_the_calls_after_the_compiling_one(monkeypatch, capsys):
    """The run's first call traces and compiles the step: its seconds do not enter the time left
    (the first line once said "epoch left 1h10m" for a run of minutes)."""
    clock = [1000.0]
    monkeypatch.setattr(callbacks.time, "time", lambda: clock[0])
    progress = callbacks.Progress(callbacks.Log(None), epochs=1, steps_per_epoch=100, batch_size=8, deadline=1e12)
    progress.interactive = True
    means = {"d_loss": 1.0, "g_loss": 1.0}
    for step, seconds in ((10, 60.0), (20, 1.0), (30, 1.0)):  # 10 steps a call: 60 s compiling, then 1 s
        progress.on_steps_begin(step - 10)
        clock[0] += seconds
        progress.on_steps_end(step, 10, means)
    first, *_, last = capsys.readouterr().out.split("\r")[1:]
    assert "compiled the step in 60 s" in first and "left" not in first
    assert "80 img/s" in last and "epoch left 0m07s" in last  # 70 steps at 10 a second


class _CollapseAt(training.Callback):
    """Forces a collapse at the end of epoch `epoch`: G's first layer stops reading z (its kernel
    zeroed), so every z gives the same image, as in a mode collapse."""

    def __init__(self, epoch: int, steps_per_epoch: int):
        self.last_step = epoch * steps_per_epoch

    def on_train_begin(self, trainer):
        self.trainer = trainer

    def on_steps_end(self, step, steps, means):
        if step == self.last_step:
            first_kernel = self.trainer.generator.trainable_variables[0]
            first_kernel.assign(tf.zeros_like(first_kernel))


def _train_forced(run_dir, source, epochs: int, force: training.Callback):
    """A tiny alternating run of `epochs` with `force` among its callbacks: the trainer, its config and stats."""
    config = _tiny(epochs=epochs, update_order="alternating")
    trainer = training.train(config, source, str(run_dir), tf.distribute.get_strategy(), callbacks=[force])
    return trainer, config, run_folder.read_jsonl(str(run_dir / "stats.jsonl"))


def test_a_forced_collapse_rolls_back_to_the_last_good_epoch_and_halves_the_rates(tmp_path, noise_faces, capsys):
    run_dir = tmp_path / "run"
    trainer, config, records = _train_forced(run_dir, noise_faces(32), 3, _CollapseAt(3, 4))  # 4 steps an epoch
    assert [r.get("rolled_back_to") for r in records] == [None, None, 2], [r["diversity"] for r in records]
    assert records[2]["diversity"] < 0.25 * max(r["diversity"] for r in records[:2])
    assert "a collapse: rolled back to epoch 2's networks and halved both learning rates" in capsys.readouterr().out
    assert trainer.rate_factor == 0.5
    assert float(trainer.g_optimizer.learning_rate.numpy()) == pytest.approx(config.training.g_lr / 2)
    assert int(trainer.step.numpy()) == 12 and int(trainer.epoch.numpy()) == 3  # the counters went on
    epoch2 = training.GANTrainer(config, tf.distribute.get_strategy())
    epoch2.checkpoint.read(str(run_dir / "checkpoints" / "ckpt-8")).expect_partial()
    for rolled_back, good in zip(trainer.generator.weights, epoch2.generator.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(rolled_back), np.asarray(good))


class _DivergeAt(training.Callback):
    """Forces a divergence in epoch `epoch`: D's learning rate x300 and G's 0 for that epoch, so D
    learns the reals apart in a few steps (D(x) jumps) while the samples stay as they were."""

    def __init__(self, epoch: int, steps_per_epoch: int):
        self.first_step = (epoch - 1) * steps_per_epoch

    def on_train_begin(self, trainer):
        self.trainer = trainer

    def on_steps_begin(self, step):
        if step == self.first_step:
            self.trainer.d_optimizer.learning_rate.assign(self.trainer.d_optimizer.learning_rate * 300)
            self.trainer.g_optimizer.learning_rate.assign(0.0)


def test_a_forced_divergence_rolls_back_when_d_x_jumps_and_the_diversity_alone_would_not(
        tmp_path, noise_faces, capsys, monkeypatch):
    # D(x) is judged from CollapseGuard.DIVERGENCE_AFTER updates on (1,000; a tiny D has learnt noise by
    # then, leaving no room to rise): here from the end of epoch 2, step 8.
    monkeypatch.setattr(callbacks.CollapseGuard, "DIVERGENCE_AFTER", 8)
    trainer, _, records = _train_forced(tmp_path / "run", noise_faces(32), 4, _DivergeAt(3, 4))
    assert [r.get("rolled_back_to") for r in records] == [None, None, 2, None], [r["d_real"] for r in records]
    assert records[2]["d_real"] - records[1]["d_real"] > 0.15
    assert records[2]["diversity"] >= 0.25 * max(r["diversity"] for r in records[:2])  # not a collapse
    out = capsys.readouterr().out
    assert f"epoch 3: D(x) rose to {records[2]['d_real']:.2f} from {records[1]['d_real']:.2f} at epoch 2, " \
           "a divergence: rolled back to epoch 2's networks and halved both learning rates" in out
    assert trainer.rate_factor == 0.5
    # Epoch 4 trained from epoch 2's networks at half the rates: D(x) back near epoch 2's.
    assert abs(records[3]["d_real"] - records[1]["d_real"]) < 0.1


def test_a_resumed_run_on_fewer_images_says_so_and_counts_its_epochs_by_them(tmp_path, noise_faces, capsys):
    """Issue 49, item 6: after the dataset shrank from 32 to 16 images, the resumed epoch 3 ran one step
    (its start was reckoned at 2 epochs of today's 2 steps, not the 8 steps the run had taken), unannounced."""
    from illustration_gan import data

    source = noise_faces(32)  # 4 steps of 8
    run_dir = tmp_path / "run"
    strategy = tf.distribute.get_strategy()
    training.train(_tiny(epochs=2), source, str(run_dir), strategy)
    for i in range(16, 32):
        (tmp_path / "faces" / f"{i}.png").unlink()
    capsys.readouterr()
    training.train(_tiny(epochs=3), data.scan(str(tmp_path / "faces")), str(run_dir), strategy, resume=True)
    out = capsys.readouterr().out
    assert f"16 usable images in {tmp_path / 'faces'} (32 then)" in out
    assert "The epochs left have 2 steps of 8 images (4 before)" in out
    records = run_folder.read_jsonl(str(run_dir / "stats.jsonl"))
    assert [r["step"] for r in records] == [4, 8, 10] and records[-1]["d_updates"] == 2
    training.train(_tiny(epochs=3), data.scan(str(tmp_path / "faces")), str(run_dir), strategy, resume=True)
    assert "dataset has changed" in capsys.readouterr().out  # the options keep what the run started with


def test_images_deleted_after_the_scan_are_skipped_and_training_goes_on(tmp_path, noise_faces, caplog):
    """Issue 49, item 13: a file deleted between the scan and its first read was a NotFoundError mid-epoch."""
    source = noise_faces(32)
    for i in (5, 31):
        (tmp_path / "faces" / f"{i}.png").unlink()
    trainer = training.train(_tiny(epochs=2), source, str(tmp_path / "run"), tf.distribute.get_strategy())
    assert int(trainer.step.numpy()) == 8  # the epochs keep their steps: the 30 images left repeat
    assert "faces/5.png: it no longer reads as an image" in caplog.text and "2 skipped so far" in caplog.text
