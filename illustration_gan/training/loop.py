"""The epoch loop: epochs, checkpoints, resume, signals, the time limit and the NaN guard.

Everything else that happens during training is a callback (`callbacks.py`).
The end of an epoch is crash-consistent: the epoch's files (grid, generator,
stats line) are written first and the checkpoint that advances the counters
last, so a run killed in between resumes at that epoch and rewrites its files.
Ctrl-C / SIGTERM and `--max_minutes` save a checkpoint (mid-epoch if need be)
and stop; a non-finite loss stops without saving, so the newest checkpoint is
the last good one.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import time
from dataclasses import dataclass

import tensorflow as tf
from absl import logging

from illustration_gan import UserError, data, distribute, run_folder
from illustration_gan.config import Config
from illustration_gan.training.callbacks import Log, default_callbacks
from illustration_gan.training.step import GANTrainer

COUNTS = ("d_updates", "g_updates", "labels_swapped")  # summed over an epoch; every other metric is averaged


class TrainingDiverged(RuntimeError):
    pass


class TrainingInterrupted(Exception):
    """Raised after a checkpoint was written because of a signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def train(
    config: Config,
    source: data.ImageSource,
    run_dir: str,
    strategy: tf.distribute.Strategy,
    resume: bool = False,
    callbacks: list | None = None,
    keep_worker_files: bool = False,
) -> GANTrainer:
    """Trains for `config.epochs` epochs (or until stopped), writing into `run_dir`.

    `callbacks` (e.g. `evaluation.FIDMonitor`) run on the chief after the epoch's grid and
    generator are written and before its stats line, to which they may add keys.
    """
    chief = distribute.is_chief(strategy)
    out_dir = distribute.write_dir(run_dir, strategy)
    steps_per_epoch = _steps_per_epoch(source.num_images, config.training.batch_size, strategy)
    os.makedirs(out_dir, exist_ok=True)
    trainer = GANTrainer(config, strategy)
    manager = tf.train.CheckpointManager(
        trainer.checkpoint, os.path.join(out_dir, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    log = Log(os.path.join(run_dir, "log.txt") if chief else None)
    _start_or_resume(trainer, manager, config, source, run_dir, chief, resume, log)
    start_epoch, step = int(trainer.epoch.numpy()), int(trainer.step.numpy())
    # A checkpoint written mid-epoch resumes inside that epoch.
    done_in_epoch = min(max(step - start_epoch * steps_per_epoch, 0), steps_per_epoch - 1)
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: data.training_dataset(
            source, config.model.image_size, config.training.batch_size, seed=config.seed + start_epoch,
            input_context=ctx,
        )
    )
    iterator = iter(dataset)
    deadline = time.time() + config.max_minutes * 60 if config.max_minutes > 0 else math.inf
    hooks = default_callbacks(trainer, run_dir, out_dir, chief, log, callbacks or [], steps_per_epoch, deadline)
    stop = _StopFlag()
    previous_handlers = _install_signal_handlers(stop)
    stopped_early = False
    try:
        for hook in hooks:
            hook.on_train_begin(trainer)
        for epoch in range(start_epoch + 1, config.epochs + 1):
            started, sums, steps_run = time.time(), {}, 0
            for _ in range(steps_per_epoch - done_in_epoch):
                for hook in hooks:
                    hook.on_step_begin(step)
                values = {k: float(v) for k, v in trainer.train_step(iterator).items()}
                step, steps_run = step + 1, steps_run + 1
                _check_finite(values, epoch, step, run_dir)
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                for hook in hooks:
                    hook.on_step_end(step, values)
                if stop.signum or time.time() > deadline:
                    break
            if steps_run < steps_per_epoch - done_in_epoch:  # stopped inside the epoch: checkpoint the step
                manager.save(checkpoint_number=step)
                stopped_early = True
                break
            done_in_epoch = 0
            record = _epoch_record(trainer, epoch, step, sums, steps_run, time.time() - started)
            for hook in hooks:
                hook.on_epoch_end(trainer, epoch, record)
            trainer.epoch.assign(epoch)
            manager.save(checkpoint_number=step)  # last: the counters advance once the epoch's files exist
            if stop.signum or time.time() > deadline:
                stopped_early = epoch < config.epochs
                break
    finally:
        _restore_signal_handlers(previous_handlers)
        for hook in hooks:
            hook.on_train_end(trainer)
        if not chief and not keep_worker_files:
            shutil.rmtree(out_dir, ignore_errors=True)
    if stopped_early and chief:
        reason = signal.Signals(stop.signum).name if stop.signum else f"--max_minutes {config.max_minutes:g}"
        log(
            f"stopped by {reason} at epoch {int(trainer.epoch.numpy())}, step {step}; "
            f"checkpoint written. Continue with: python train.py --TYPE train --resume {run_dir}"
        )
    log.close()
    if stop.signum:
        raise TrainingInterrupted(stop.signum)
    return trainer


def _steps_per_epoch(num_images: int, batch_size: int, strategy) -> int:
    steps = num_images // batch_size
    if steps == 0:
        raise UserError(f"{num_images} images are fewer than one batch of {batch_size}")
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UserError(f"batch_size {batch_size} does not split evenly over {replicas} replicas")
    return steps


def _start_or_resume(trainer, manager, config, source, run_dir, chief, resume, log) -> None:
    """Restores the newest checkpoint and drops stats of epochs after it, or records a new run's options."""
    stats_path = os.path.join(run_dir, run_folder.STATS_FILE)
    if not resume:
        if chief:
            options = run_folder.training_options(config, source, trainer.strategy.num_replicas_in_sync)
            run_folder.write_json(os.path.join(run_dir, run_folder.OPTIONS_FILE), options)
        return
    if manager.latest_checkpoint is None:
        raise UserError(f"nothing to resume: no checkpoint in {run_dir}/checkpoints")
    trainer.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    if chief:
        epoch = int(trainer.epoch.numpy())
        run_folder.truncate_stats(stats_path, epoch)
        log(f"resuming {run_dir} at epoch {epoch + 1}, step {int(trainer.step.numpy())}")


def _check_finite(values: dict, epoch: int, step: int, run_dir: str) -> None:
    if not (math.isfinite(values["d_loss"]) and math.isfinite(values["g_loss"])):
        raise TrainingDiverged(
            f"non-finite loss at epoch {epoch}, step {step} (d_loss={values['d_loss']}, g_loss={values['g_loss']}); "
            f"the newest checkpoint in {run_dir}/checkpoints is the last good one. Try lower learning rates."
        )


def _epoch_record(trainer, epoch: int, step: int, sums: dict, steps_run: int, elapsed: float) -> dict:
    """The stats.jsonl line of an epoch: mean metrics, update counts, speed, and the checkpoint it ends in."""
    record = {k: v / steps_run for k, v in sums.items() if k not in COUNTS}
    record.update({k: int(sums[k]) for k in COUNTS})
    record.update(
        epoch=epoch,
        step=step,
        images_per_second=steps_run * trainer.config.training.batch_size / elapsed,
        epoch_seconds=elapsed,
        wall_time=time.time(),
        checkpoint=f"ckpt-{step}",
    )
    if trainer.augmenter.adaptive:
        record["augment_p"] = float(trainer.augmenter.probability.numpy())
    return record


@dataclass
class _StopFlag:
    signum: int = 0


def _install_signal_handlers(flag: _StopFlag):
    previous = {}

    def handler(signum, frame):
        if flag.signum:  # second signal: stop now
            signal.signal(signum, previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        flag.signum = signum
        logging.warning("%s received: finishing this step and writing a checkpoint", signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread (e.g. some test runners)
            pass
    return previous


def _restore_signal_handlers(previous):
    for signum, old in previous.items():
        signal.signal(signum, old)
