"""illustration_gan/folder_lock.py: one writer per folder, and its uses by training and generate (issue 49).

The first writer is a child process holding the lock (tests/conftest.py, `lock_holder`); killing it
with SIGKILL leaves its lock file behind, as a crashed run does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from illustration_gan import config as config_lib
from illustration_gan import folder_lock

ROOT = Path(__file__).resolve().parents[1]


def _kill(child) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_a_second_writer_gets_one_line_naming_the_holder_and_a_dead_holders_lock_is_taken_over(tmp_path, lock_holder):
    folder = tmp_path / "out"
    first = lock_holder(folder)
    with pytest.raises(folder_lock.FolderLocked) as error:
        with folder_lock.hold(str(folder), "test"):
            pytest.fail("the lock was granted twice")
    message = str(error.value)
    assert "\n" not in message and f"holder PID {first.pid} on " in message and f"(kill {first.pid})" in message
    assert error.value.holder["pid"] == first.pid

    _kill(first)
    warnings = []
    with folder_lock.hold(str(folder), "test", warn=warnings.append) as path:
        assert json.loads(Path(path).read_text())["pid"] == os.getpid()
    assert len(warnings) == 1 and f"left by holder PID {first.pid}" in warnings[0] and "no longer running" in warnings[0]
    assert folder.is_dir() and not (folder / folder_lock.LOCK_FILE).exists()  # released: the file goes, the folder stays

    warnings.clear()  # a lock released normally leaves nothing to take over
    with folder_lock.hold(str(folder), "test", warn=warnings.append):
        pass
    assert warnings == []
    with folder_lock.hold(str(tmp_path / "new"), "test"):  # a folder it made and nothing was written to: removed
        assert (tmp_path / "new").is_dir()
    assert not (tmp_path / "new").exists()


def test_a_locked_function_runs_unlocked_where_it_does_not_write(tmp_path, lock_holder):
    @folder_lock.locking("folder", "test", when=lambda given: given["writes"])
    def work(folder, writes=True):
        return "ran"

    first = lock_holder(tmp_path)
    assert work(str(tmp_path), writes=False) == "ran"  # e.g. a worker that is not the chief
    with pytest.raises(folder_lock.FolderLocked, match=f"PID {first.pid}"):
        work(str(tmp_path))


# ---------------------------------------------------------------------------
# Training and generate


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A one-epoch run of a tiny DCGAN on 16 random images (seconds)."""
    import tensorflow as tf

    from illustration_gan import data, training

    root = tmp_path_factory.mktemp("lock")
    faces = root / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        cv2.imwrite(str(faces / f"{i}.png"), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    config = config_lib.resolve("dcgan", dict(image_size=32, g_width=4, d_width=4, z_dim=8, batch_size=8, epochs=1,
                                              update_order="simultaneous", precision="float32"))
    run_dir = root / "run"
    training.train(config, data.scan(str(faces)), str(run_dir), tf.distribute.get_strategy())
    return run_dir


def _train_py(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def _one_error_line(result: subprocess.CompletedProcess, pid: int) -> None:
    """Exit 2 and one line naming `pid` (TensorFlow may log a device notice of its own before it)."""
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"PID {pid}" in errors[0] and "Traceback" not in result.stderr, result.stderr[-2000:]


def test_a_second_training_of_a_run_folder_stops_with_one_line_and_a_dead_runs_lock_is_taken_over(
        tiny_run, lock_holder, capsys):
    import tensorflow as tf

    from illustration_gan import data, run_folder, training

    first = lock_holder(tiny_run)  # a training writing the run folder
    half_written = tiny_run / "generator.tmp.keras"  # the first run's file being written
    half_written.write_bytes(b"being written")
    stats = (tiny_run / "stats.jsonl").read_bytes()
    _one_error_line(_train_py("--TYPE", "train", "--resume", str(tiny_run), "--epochs", "2"), first.pid)
    assert half_written.read_bytes() == b"being written" and (tiny_run / "stats.jsonl").read_bytes() == stats

    _kill(first)  # the first run dies; the next one takes its lock over and cleans up after it
    config = run_folder.read_config(str(tiny_run))
    config = config_lib.resolve(config.preset, {**_flat(config), "epochs": 2})
    source = data.scan(run_folder.dataset_path(str(tiny_run)))
    training.train(config, source, str(tiny_run), tf.distribute.get_strategy(), resume=True)
    assert f"taking over the lock of {tiny_run} left by holder PID {first.pid}" in capsys.readouterr().err
    assert [r["epoch"] for r in run_folder.read_jsonl(str(tiny_run / "stats.jsonl"))] == [1, 2]
    assert not half_written.exists() and not (tiny_run / folder_lock.LOCK_FILE).exists()


def test_a_new_run_into_a_run_folder_being_written_stops_before_touching_it(tiny_run, tmp_path, lock_holder):
    import tensorflow as tf

    from illustration_gan import data, run_folder, training

    run_dir = tmp_path / "run"  # --run_dir of a run that has not finished its first epoch (no stats yet)
    first = lock_holder(run_dir)
    config = run_folder.read_config(str(tiny_run))
    source = data.scan(run_folder.dataset_path(str(tiny_run)))
    with pytest.raises(folder_lock.FolderLocked, match=f"PID {first.pid}"):
        training.train(config, source, str(run_dir), tf.distribute.get_strategy())
    assert sorted(p.name for p in run_dir.iterdir()) == [folder_lock.LOCK_FILE]


def test_a_second_generate_into_one_output_stops_and_a_dead_ones_lock_is_taken_over(tiny_run, tmp_path, lock_holder,
                                                                                      capsys):
    from illustration_gan import generate

    sampler = generate.load_sampler(str(tiny_run))
    out = tmp_path / "generated"
    first = lock_holder(out)
    partial = out / ".seed0000-000000.png.partial"  # the first one's image being written
    partial.write_bytes(b"being written")
    with pytest.raises(folder_lock.FolderLocked, match=f"PID {first.pid}"):
        generate.write_images(sampler, 4, str(out), progress=None)
    assert sorted(p.name for p in out.iterdir()) == sorted([folder_lock.LOCK_FILE, partial.name])

    _kill(first)
    paths = generate.write_images(sampler, 4, str(out), progress=None)
    assert f"left by holder PID {first.pid}" in capsys.readouterr().err
    assert all(os.path.exists(p) for p in paths) and not partial.exists()
    assert not (out / folder_lock.LOCK_FILE).exists()


def _flat(config):
    as_dict = config.to_json()
    flat = {**as_dict.pop("model"), **as_dict.pop("training"), **as_dict}
    flat.pop("preset")
    return flat
