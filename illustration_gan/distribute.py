"""Choosing a `tf.distribute` strategy, and which worker writes files.

- default: one device (the CPU, or the first GPU).
- mirrored: synchronous data parallelism over the local GPUs; on a machine
  without GPUs the CPU is split into `cpu_replicas` logical devices (tests use 2).
- multiworker: `MultiWorkerMirroredStrategy`, one process per machine, the
  cluster described by the TF_CONFIG environment variable. Only the chief
  (worker 0, or a task of type "chief") writes the run folder; the others write
  their checkpoints to a scratch folder that is removed again, as TensorFlow's
  multi-worker guide prescribes.

The global batch size stays what `--batch_size` says and is split evenly across
replicas; the learning rate is not rescaled (see README, "Speed and scaling").
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from illustration_gan import UserError


def make_strategy(name: str, cpu_replicas: int = 2) -> tf.distribute.Strategy:
    """Must run before any other TensorFlow work in the process."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_replicas)]
            )
        except RuntimeError:  # already initialised (e.g. in tests): use what exists
            pass
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:cpu_replicas]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UserError("--strategy multiworker needs the TF_CONFIG environment variable (see README)")
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise UserError(f"unknown strategy {name!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_index() -> int:
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    return int(tf_config.get("task", {}).get("index", 0))


def write_dir(base: str, strategy: tf.distribute.Strategy) -> str:
    """`base` on the chief; a per-worker scratch folder elsewhere."""
    if is_chief(strategy):
        return base
    return os.path.join(base, f".worker{worker_index()}-scratch")


def first_copy(strategy: tf.distribute.Strategy, reduced):
    """Every replica holds the same all-reduced sums; continue with this worker's first copy."""
    return tf.nest.map_structure(lambda value: strategy.experimental_local_results(value)[0], reduced)


def replica_id() -> tf.Tensor:
    """This replica's index (int64), inside `strategy.run`."""
    return tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
