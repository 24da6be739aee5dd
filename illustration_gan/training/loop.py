"""The epoch loop: epochs, checkpoints, resume, signals, the time limit and the NaN guard.

Everything else that happens during training is a callback (`callbacks.py`).
The end of an epoch is crash-consistent: the epoch's files (grid, generator,
stats line) are written first and the checkpoint that advances the counters
last, so a run killed in between resumes at that epoch and rewrites its files.
Ctrl-C / SIGTERM and `--max_minutes` save a checkpoint (mid-epoch if need be)
and stop; a non-finite loss stops without saving, so the newest checkpoint is
the last good one. `--max_minutes`, like `--epochs`, is the budget of the whole
run: the checkpoint carries the seconds trained so far, so a resumed run trains
what is left of it, on the learning-rate schedule an uninterrupted run follows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import glob
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass

import keras
import tensorflow as tf
from absl import logging

from illustration_gan import UserError, data, distribute, folder_lock, run_folder
from illustration_gan.config import Config
from illustration_gan.training import precision
from illustration_gan.training.callbacks import Callback, Log, default_callbacks
from illustration_gan.training.step import GANTrainer

COUNTS = ("d_updates", "g_updates", "labels_swapped")  # summed over an epoch; every other metric is averaged


class TrainingDiverged(RuntimeError):
    pass


class TrainingInterrupted(Exception):
    """Raised after a checkpoint was written because of a signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# One writer per run folder: the chief holds its lock for the whole run; a second run of the folder
# stops with one line naming the first.
@folder_lock.locking("run_dir", "training", when=lambda given: distribute.is_chief(given["strategy"]))
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
    for callback in callbacks or []:
        if not isinstance(callback, Callback):
            raise TypeError(f"{callback!r} is not a training.Callback: subclass it and override the hooks it needs")
    chief = distribute.is_chief(strategy)
    out_dir = distribute.write_dir(run_dir, strategy)
    steps_per_epoch = steps_per_epoch_of(source.num_images, config.training.batch_size, strategy)
    run_folder.check_writable(out_dir)
    for path in run_folder.remove_leftovers(out_dir):
        logging.warning("removed %s, left half-written by an earlier run", path)
    log = Log(os.path.join(run_dir, "log.txt") if chief else None)
    policy_before, chosen = keras.mixed_precision.global_policy(), None
    if config.precision == "auto":  # a resumed run keeps the policy its options record
        choice = precision.choose(config)
        chosen = choice.record()
        if chief:
            log(f"precision auto: {choice.policy} ({choice.reason}; force another with --precision)")
        config = dataclasses.replace(config, precision=choice.policy)
    trainer = GANTrainer(config, strategy)
    manager = tf.train.CheckpointManager(
        trainer.checkpoint, os.path.join(out_dir, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    _start_or_resume(trainer, manager, config, source, run_dir, chief, resume, log, chosen)
    start_epoch, step = int(trainer.epoch.numpy()), int(trainer.step.numpy())
    # A checkpoint written mid-epoch resumes inside that epoch, with the counts of its first part.
    done_in_epoch = min(max(step - _epoch_end_step(run_dir, start_epoch, steps_per_epoch), 0), steps_per_epoch - 1)
    partial = _PartialEpoch.load(out_dir, step) if done_in_epoch else _PartialEpoch()
    iterator = iter(training_batches(config, source, strategy, start_epoch))
    session_start, trained_before = time.time(), float(trainer.trained_seconds.numpy())
    trained = lambda: trained_before + time.time() - session_start  # noqa: E731  (seconds, all parts of the run)
    deadline = session_start + config.max_minutes * 60 - trained_before if config.max_minutes > 0 else math.inf
    last_epoch = config.epochs
    if config.max_minutes > 0 and trained_before >= config.max_minutes * 60:
        last_epoch = start_epoch
        log(f"{run_dir} has trained {trained_before / 60:.1f} of its --max_minutes {config.max_minutes:g}: "
            f"nothing left to train. Pass a larger --max_minutes to go on.")
    hooks = default_callbacks(trainer, run_dir, out_dir, chief, log, callbacks or [], steps_per_epoch, deadline)
    stop = _StopFlag()
    # With a decaying learning rate (set before each call) a call spans at most 1% of the run's steps.
    most = max(1, config.epochs * steps_per_epoch // 100) if config.training.lr_decay > 0 else 1000
    pace = Pace(deadline, most=most, fixed=min(10, most) if distribute.is_multiworker(strategy) else 0)
    should_stop = lambda: bool(stop.signum) or time.time() > deadline  # noqa: E731
    previous_handlers = _install_signal_handlers(stop)
    stopped_early = False
    try:
        for hook in hooks:
            hook.on_train_begin(trainer)
        for epoch in range(start_epoch + 1, last_epoch + 1):
            started, sums, steps_run = time.time() - partial.seconds, partial.sums, partial.steps_run
            to_run = steps_per_epoch - done_in_epoch
            ran = _run_steps(trainer, iterator, hooks, to_run, epoch, sums, should_stop, run_dir, pace)
            step, steps_run, done_in_epoch, partial = step + ran, steps_run + ran, 0, _PartialEpoch()
            if ran < to_run:  # stopped inside the epoch: checkpoint the step, not the epoch
                with _storage_errors(out_dir):
                    _PartialEpoch(sums, steps_run, time.time() - started).save(out_dir, step)
                    trainer.trained_seconds.assign(trained())
                    manager.save(checkpoint_number=step)
                    for hook in hooks:
                        hook.on_stop(trainer, step)
                stopped_early = True
                break
            record = _epoch_record(trainer, epoch, step, sums, steps_run, time.time() - started)
            record["training_minutes"] = trained() / 60  # as --max_minutes counts
            with _storage_errors(out_dir):
                for hook in hooks:
                    hook.on_epoch_end(trainer, epoch, record)
                trainer.epoch.assign(epoch)
                trainer.trained_seconds.assign(trained())
                prefix = manager.save(checkpoint_number=step)  # last: the counters advance once the epoch's files exist
                for hook in hooks:
                    hook.on_checkpoint(trainer, epoch, prefix)
            if should_stop():
                stopped_early = epoch < config.epochs
                break
        if stopped_early and chief:
            reason = signal.Signals(stop.signum).name if stop.signum else f"--max_minutes {config.max_minutes:g}"
            longer = "" if stop.signum else " --max_minutes M (the whole run's minutes, more than before)"
            log(f"stopped by {reason} at epoch {int(trainer.epoch.numpy())}, step {step}; checkpoint written. "
                f"Continue with: python train.py --TYPE train --resume {run_dir}{longer}")
    finally:
        _restore_signal_handlers(previous_handlers)
        with _storage_errors(out_dir, quiet=sys.exc_info()[0] is not None):
            for hook in hooks:
                hook.on_train_end(trainer)
        if chief and sys.exc_info()[0] is None:
            log(what_to_open(run_dir))
        if not chief and not keep_worker_files:
            shutil.rmtree(out_dir, ignore_errors=True)
        log.close()
        keras.mixed_precision.set_global_policy(policy_before)  # the trainer set the run's policy globally
    if stop.signum:
        raise TrainingInterrupted(stop.signum)
    return trainer


def what_to_open(run_dir: str) -> str:
    """A run's last line: its folder, the files it has to look at, and the command for more faces."""
    grids = sorted(glob.glob(os.path.join(run_dir, "fakes_*.png")))[-1:]
    files = [os.path.basename(p) for p in grids] + [
        name for name in ("losses.png", "progress.gif", run_folder.GENERATOR_FILE)
        if os.path.exists(os.path.join(run_dir, name))]
    line = f"run folder {run_dir}: open " + (", ".join(files) or "log.txt")
    if run_folder.GENERATOR_FILE in files:
        line += f"; more faces: python train.py --TYPE generate --run_dir {run_dir}"
    return line


def training_batches(config: Config, source, strategy, start_epoch: int):
    """The run's batches from `start_epoch` on, distributed by `strategy`."""
    return strategy.distribute_datasets_from_function(
        lambda ctx: data.training_dataset(
            source, config.model.image_size, config.training.batch_size, seed=config.seed + start_epoch,
            input_context=ctx, flip=config.training.flip, fit=config.training.fit,
        )
    )


def _run_steps(trainer, iterator, hooks, count: int, epoch: int, sums: dict, should_stop, run_dir: str,
               pace: "Pace") -> int:
    """Up to `count` training steps, a call of the compiled `train_steps` at a time, adding their
    metrics to `sums`; returns how many ran."""
    ran = 0
    while ran < count:
        step = int(trainer.step.numpy())
        for hook in hooks:
            hook.on_steps_begin(step)
        steps = pace.steps(count - ran)
        started = time.perf_counter()
        call_sums, done, last = trainer.train_steps(iterator, tf.constant(steps, tf.int32))
        values, done = {k: float(v) for k, v in call_sums.items()}, int(done)
        pace.record(done, time.perf_counter() - started)
        _check_finite({k: float(v) for k, v in last.items()}, epoch, step + done, run_dir)
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        ran += done
        for hook in hooks:
            hook.on_steps_end(step + done, done, {k: v / done for k, v in values.items()})
        if should_stop():
            return ran
    return count


class Pace:
    """How many steps one call of the compiled step runs: about `seconds` of work, so that the
    progress line, signals and --max_minutes react within a few seconds while the per-call costs
    (Python, the host reading the metrics) are paid once per call. One step per call until the
    step is compiled and timed; never past the time limit. `fixed` gives every call that many
    steps instead: workers of a cluster must agree on each call's count, and timings differ."""

    def __init__(self, deadline: float = math.inf, seconds: float = 1.0, most: int = 1000, fixed: int = 0):
        self.deadline, self.seconds, self.most, self.fixed = deadline, seconds, most, fixed
        self.per_call, self.step_seconds, self.calls = fixed or 1, 0.0, 0

    def steps(self, left: int) -> int:
        steps = min(self.per_call, left)
        if self.step_seconds > 0 and self.deadline < math.inf:
            steps = min(steps, max(1, int((self.deadline - time.time()) / self.step_seconds) + 1))
        return steps

    def record(self, steps: int, seconds: float) -> None:
        self.calls += 1
        if self.calls == 1 or self.fixed:  # the first call traces and compiles
            return
        self.step_seconds = seconds / max(steps, 1)
        target = int(self.seconds / max(self.step_seconds, 1e-6))
        self.per_call = max(1, min(target, self.per_call * 4, self.most))


def steps_per_epoch_of(num_images: int, batch_size: int, strategy) -> int:
    """Steps per epoch, or a UserError if the data or the replicas cannot make a batch (check it
    before creating a run folder)."""
    steps = num_images // batch_size
    if steps == 0:
        raise UserError(f"{num_images} images are fewer than one batch of {batch_size}")
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UserError(f"batch_size {batch_size} does not split evenly over {replicas} replicas")
    return steps


def _start_or_resume(trainer, manager, config, source, run_dir, chief, resume, log, precision_auto) -> None:
    """Restores the newest checkpoint and drops stats of epochs after it, or records a new run's options."""
    stats_path = os.path.join(run_dir, run_folder.STATS_FILE)
    if not resume:
        if chief:
            options = run_folder.training_options(config, source, trainer.strategy.num_replicas_in_sync,
                                                  precision_auto)
            run_folder.write_json(os.path.join(run_dir, run_folder.OPTIONS_FILE), options)
        return
    damaged = run_folder.checkpoint_prefixes(manager.directory)
    restored = run_folder.restore_newest_checkpoint(trainer.checkpoint, manager.directory, warn=log,
                                                    older=trainer.checkpoint_before_seconds)
    if restored is None:
        if damaged or not os.path.exists(os.path.join(run_dir, run_folder.OPTIONS_FILE)):
            raise UserError(f"nothing to resume: no checkpoint in {manager.directory} restores"
                            + (f" ({len(damaged)} damaged; move them away to start again)" if damaged else ""))
        # Stopped before its first checkpoint: nothing was trained that could be kept.
        log(f"{run_dir} has no checkpoint yet: starting it again from step 0")
    if chief:
        epoch = int(trainer.epoch.numpy())
        run_folder.truncate_stats(stats_path, epoch)
        log(f"resuming {run_dir} at epoch {epoch + 1}, step {int(trainer.step.numpy())}")
        changed = run_folder.dataset_change(run_dir, source, config.training.batch_size)
        if changed:
            log(changed)


def _epoch_end_step(run_dir: str, epoch: int, steps_per_epoch: int) -> int:
    """The step `epoch` ended at: its stats line's (an epoch before the dataset changed had another
    number of steps), or by today's count without one."""
    ends = [r.get("step") for r in run_folder.read_jsonl(os.path.join(run_dir, run_folder.STATS_FILE))
            if r.get("epoch") == epoch]
    return ends[-1] if ends and isinstance(ends[-1], int) else epoch * steps_per_epoch


def _check_finite(values: dict, epoch: int, step: int, run_dir: str) -> None:
    if not (math.isfinite(values["d_loss"]) and math.isfinite(values["g_loss"])):
        raise TrainingDiverged(
            f"non-finite loss at epoch {epoch}, step {step} (d_loss={values['d_loss']}, g_loss={values['g_loss']}); "
            f"the newest checkpoint in {run_dir}/checkpoints is the last good one. Try lower learning rates."
        )


def _epoch_record(trainer, epoch: int, step: int, sums: dict, steps_run: int, elapsed: float) -> dict:
    """The stats.jsonl line of an epoch: mean metrics, update counts, speed, and the checkpoint it ends in."""
    record = {k: v / steps_run for k, v in sums.items() if k not in COUNTS + ("g_measured",)}
    if "g_measured" in sums:  # G's losses exist only on steps where G updated (n_critic, boosts)
        for key in ("g_loss", "zpred_loss"):
            if key in sums:
                record[key] = sums[key] / max(1.0, sums["g_measured"])
    record.update({k: int(sums[k]) for k in COUNTS if k in sums})
    if "margin_repeats" in sums:
        record["margin_repeats"] = int(sums["margin_repeats"])
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


class _PartialEpoch:
    """The metric sums of an epoch's first part, kept beside a mid-epoch checkpoint so that the
    resumed epoch's stats line counts the whole epoch."""

    FILE = "partial_epoch.json"

    def __init__(self, sums: dict | None = None, steps_run: int = 0, seconds: float = 0.0):
        self.sums, self.steps_run, self.seconds = dict(sums or {}), steps_run, seconds

    def save(self, out_dir: str, step: int) -> None:
        record = dict(step=step, sums=self.sums, steps_run=self.steps_run, seconds=self.seconds)
        os.makedirs(os.path.join(out_dir, "checkpoints"), exist_ok=True)
        run_folder.write_json(os.path.join(out_dir, "checkpoints", self.FILE), record)

    @classmethod
    def load(cls, out_dir: str, step: int) -> "_PartialEpoch":
        path = os.path.join(out_dir, "checkpoints", cls.FILE)
        if not os.path.exists(path):
            return cls()
        record = run_folder.read_json(path)
        if record.get("step") != step:  # written for another checkpoint than the one restored
            return cls()
        return cls(record["sums"], record["steps_run"], record["seconds"])


STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


@contextlib.contextmanager
def _storage_errors(out_dir: str, quiet: bool = False):
    """Turns a full disk or a folder that cannot be written into one UserError naming the path and
    the free space, after removing half-written files; the last good checkpoint stays."""
    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        message = str(error)
        disk = isinstance(error, OSError) and error.errno in STORAGE_ERRNOS
        disk = disk or isinstance(error, (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError))
        disk = disk or any(s in message for s in ("No space left", "Read-only file system", "Permission denied"))
        if not disk:
            raise
        run_folder.remove_leftovers(out_dir)
        if quiet:  # already failing: do not replace the first error
            return
        path = getattr(error, "filename", None) or out_dir
        reason = getattr(error, "strerror", None) or message.strip().splitlines()[0][:160]
        newest = tf.train.latest_checkpoint(os.path.join(out_dir, "checkpoints"))
        raise UserError(
            f"could not write {path}: {reason} ({run_folder.free_space(out_dir)}); training stopped, the last good "
            f"checkpoint is {newest or 'none'}"
        ) from None


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
