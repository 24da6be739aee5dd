"""illustration_gan/run_folder.py: stats that survive a torn line, leftovers of a kill, checkpoint fallback."""

from __future__ import annotations

import json
import os

import pytest
import tensorflow as tf

from illustration_gan import UserError, run_folder


def test_a_torn_last_stats_line_is_dropped_and_resume_truncation_rewrites_the_file(tmp_path):
    path = tmp_path / "stats.jsonl"
    path.write_text(json.dumps({"epoch": 1}) + "\n" + json.dumps({"epoch": 2}) + "\n" + '{"epoch": 3, "d_lo')
    assert [r["epoch"] for r in run_folder.read_jsonl(str(path))] == [1, 2]
    run_folder.truncate_stats(str(path), 2)
    assert path.read_text().splitlines() == ['{"epoch": 1}', '{"epoch": 2}']
    path.write_text('{"epoch": 1}\n{"ep\n{"epoch": 3}\n')
    with pytest.raises(UserError, match="line 2 is not JSON"):  # damage in the middle is not a torn write
        run_folder.read_jsonl(str(path))


def test_leftovers_of_a_killed_run_are_removed_and_complete_checkpoints_kept(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "ckpt-7_temp" / "part-00000-of-00001").mkdir(parents=True)
    for name in ("checkpoint.tmp1234", "ckpt-4.index", "ckpt-4.data-00000-of-00001"):
        (checkpoints / name).write_text("x")
    (tmp_path / "generator.tmp.keras").write_text("x")
    (tmp_path / "losses.png.tmp").write_text("x")
    removed = {os.path.relpath(p, tmp_path) for p in run_folder.remove_leftovers(str(tmp_path))}
    assert removed == {"generator.tmp.keras", "losses.png.tmp", "checkpoints/checkpoint.tmp1234",
                       "checkpoints/ckpt-7_temp"}
    assert sorted(p.name for p in checkpoints.iterdir()) == ["ckpt-4.data-00000-of-00001", "ckpt-4.index"]


def test_the_newest_checkpoint_that_restores_is_used_and_a_damaged_one_named(tmp_path):
    variable = tf.Variable(0.0)
    checkpoint = tf.train.Checkpoint(v=variable)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=5)
    for value in (1.0, 2.0, 3.0):
        variable.assign(value)
        manager.save(checkpoint_number=int(value))
    (tmp_path / "ckpt-3.index").unlink()  # the newest has lost its index
    data = tmp_path / "ckpt-2.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:-4] + b"\xff\xff\xff\xff")  # the next is corrupt
    lines = []
    restored = run_folder.restore_newest_checkpoint(checkpoint, str(tmp_path), warn=lines.append)
    assert restored.endswith("ckpt-1") and float(variable.numpy()) == 1.0
    assert len(lines) == 2 and "ckpt-3" in lines[0] and "NotFoundError" in lines[0]
    assert "ckpt-2" in lines[1] and "Checksum" in lines[1]
    assert data.exists()
    assert run_folder.restore_newest_checkpoint(checkpoint, str(tmp_path / "none")) is None


def test_training_options_record_the_absolute_dataset_path(tmp_path, monkeypatch):
    """A relative --path is recorded absolute too, so nearest and serve find it from another folder."""
    import cv2
    import numpy as np

    from illustration_gan import config as config_lib
    from illustration_gan import data

    (tmp_path / "faces").mkdir()
    cv2.imwrite(str(tmp_path / "faces" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    monkeypatch.chdir(tmp_path)
    source = data.scan("faces")
    options = run_folder.training_options(config_lib.resolve("fast", {"path": "faces"}), source, 1)
    assert options["dataset"]["absolute_path"] == str(tmp_path / "faces")
    (tmp_path / "run").mkdir()
    run_folder.write_json(str(tmp_path / "run" / run_folder.OPTIONS_FILE), options)
    monkeypatch.chdir("/")
    assert run_folder.dataset_path(str(tmp_path / "run")) == str(tmp_path / "faces")


def _options(tmp_path):
    from illustration_gan import config as config_lib
    from illustration_gan import data

    (tmp_path / "faces").mkdir()
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "faces" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    return run_folder.training_options(config_lib.resolve("fast", {"path": str(tmp_path / "faces")}),
                                       data.scan(str(tmp_path / "faces")), 1)


DAMAGE = {
    "torn": lambda text, options: text[:200],
    "empty": lambda text, options: "",
    "list": lambda text, options: "[1, 2]",
    "null": lambda text, options: "null",
    "not text": lambda text, options: "\xff\xfe{",
    "config a list": lambda text, options: json.dumps({**options, "config": []}),
    "model a list": lambda text, options: json.dumps({**options, "config": {**options["config"], "model": [3]}}),
    "a string for an int": lambda text, options: json.dumps(
        {**options, "config": {**options["config"], "epochs": "x"}}),
    "a string for a float": lambda text, options: json.dumps(
        {**options, "config": {**options["config"], "training": {**options["config"]["training"], "g_lr": "fast"}}}),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_options_file_is_one_line_naming_it(tmp_path, damage):
    """Issue 49, item 11: train --resume, generate --checkpoint, evaluate and nearest read the options through
    read_config / dataset_path; each damage was a traceback (JSONDecodeError, TypeError, AttributeError)."""
    options = _options(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    path = run / run_folder.OPTIONS_FILE
    run_folder.write_json(str(path), options)
    assert run_folder.read_config(str(run)).preset == "fast"  # intact
    path.write_bytes(DAMAGE[damage](path.read_text(), options).encode("latin-1" if damage == "not text" else "utf-8"))
    for read in (run_folder.read_config, run_folder.dataset_path):
        if damage.startswith(("model", "a string")) and read is run_folder.dataset_path:
            continue  # the path is still there
        with pytest.raises(UserError) as error:
            read(str(run))
        message = str(error.value)
        assert "\n" not in message and message.startswith(f"{path} is damaged: ") and "backup" in message
    assert isinstance(error.value, ValueError)  # readers that tolerate an unreadable file tolerate it
