"""Precision policies and multi-worker training on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, require_shared
from illustration_gan import config as config_lib
from illustration_gan import data, run_folder, training

TINY = dict(image_size=32, g_width=8, d_width=8, z_dim=16, batch_size=16, epochs=1)


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_policies_train_with_finite_losses(precision, real_faces, tmp_path):
    source = data.scan(str(real_faces))
    config = config_lib.resolve("dcgan", {**TINY, "precision": precision, "minibatch_kernels": 4})
    try:
        trainer = training.train(config, source, str(tmp_path / "run"), tf.distribute.get_strategy())
        compute_dtype = trainer.generator.layers[0].layers[0].compute_dtype
    finally:
        keras.mixed_precision.set_global_policy("float32")
    (record,) = run_folder.read_jsonl(tmp_path / "run" / "stats.jsonl")
    assert np.isfinite(record["d_loss"]) and np.isfinite(record["g_loss"])
    assert compute_dtype == precision.split("_")[1]
    assert record["g_updates"] == 4


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_loopback_stay_in_sync_and_only_the_chief_writes(real_faces, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    run_dir = tmp_path / "run"
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "TF_CPP_MIN_LOG_LEVEL": "3", "ILLUSTRATION_GAN_KEEP_WORKER_FILES": "1"}
        processes.append(subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), "--TYPE", "train", "--path", str(real_faces), "--strategy",
             "multiworker", "--run_dir", str(run_dir), "--model", "dcgan", "--image_size", "32", "--g_width", "8",
             "--d_width", "8", "--z_dim", "16", "--batch_size", "16", "--epochs", "1"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    outputs = [p.communicate(timeout=300) for p in processes]
    for p, (out, err) in zip(processes, outputs):
        assert p.returncode == 0, f"{out}\n{err}"
    assert "2 replica(s)" in outputs[0][0]
    chief = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    worker = tf.train.latest_checkpoint(str(run_dir / ".worker1-scratch" / "checkpoints"))
    assert chief and worker
    assert tf.train.load_variable(chief, "step/.ATTRIBUTES/VARIABLE_VALUE") == 4
    # Weights, optimizer slots and counters must agree exactly. Batch-norm moving statistics are
    # each replica's own (TensorFlow's default, non-synchronised batch norm) and may differ, and
    # the seconds trained are each process's own clock.
    names = [n for n, _ in tf.train.list_variables(chief)
             if n != "_CHECKPOINTABLE_OBJECT_GRAPH" and "moving_" not in n and not n.startswith("trained_seconds")]
    assert len(names) > 50
    for name in names:
        np.testing.assert_array_equal(tf.train.load_variable(chief, name), tf.train.load_variable(worker, name))
    assert (run_dir / "stats.jsonl").is_file() and not (run_dir / ".worker1-scratch" / "stats.jsonl").exists()
