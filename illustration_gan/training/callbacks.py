"""The side effects of training, one callback each (as Keras callbacks).

The loop calls `on_train_begin`, `on_steps_begin(step)` and `on_steps_end(step, steps,
means)` around each call of the compiled step (which runs `steps` steps, about a
second's worth; `means` are their metrics' means), `on_epoch_end(trainer, epoch,
record)`, `on_stop(trainer, step)` when training stops inside an epoch (--max_minutes
or a signal; after the step's checkpoint), `on_checkpoint(trainer, epoch, prefix)`
after an epoch's checkpoint and `on_train_end(trainer)`; a callback
implements only the hooks it needs. `on_epoch_end` callbacks run in list order
and may add keys to `record` before `StatsRecord` writes it to stats.jsonl.
`default_callbacks` builds the run folder's standard set (README, "The run folder, resuming, generating").
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import tensorflow as tf

from illustration_gan import data, run_folder
from illustration_gan.training import seeds


class Callback:
    """The base of every callback: `loop.train` takes only instances of it, and calls each hook
    on every callback in list order; a subclass overrides the hooks it needs."""

    def on_train_begin(self, trainer) -> None:
        pass

    def on_steps_begin(self, step: int) -> None:
        pass

    def on_steps_end(self, step: int, steps: int, means: dict) -> None:
        pass

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        pass

    def on_stop(self, trainer, step: int) -> None:
        pass

    def on_checkpoint(self, trainer, epoch: int, prefix: str) -> None:
        """After the epoch's checkpoint `prefix` is written (the counters have advanced)."""

    def on_train_end(self, trainer) -> None:
        pass


def format_seconds(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Log:
    """Writes a line to stdout and to the run's log.txt (or stdout only)."""

    def __init__(self, path: str | None):
        self.file = open(path, "a") if path else None

    def __call__(self, line: str):
        print(line, flush=True)
        if self.file:
            self.file.write(line + "\n")
            self.file.flush()

    def close(self):
        if self.file:
            self.file.close()
            self.file = None


def learning_rate_scale(progress: float, decay_fraction: float) -> float:
    """1 until the last `decay_fraction` of the run, then linearly down to 0 at its end.

    Budgeted training's linear decay (Li et al. 2020, arXiv:1905.04753): with a
    fixed budget, ending at a low learning rate beats any constant one.
    """
    if decay_fraction <= 0:
        return 1.0
    return float(np.clip((1.0 - progress) / decay_fraction, 0.0, 1.0))


class LearningRateDecay(Callback):
    """Sets both learning rates before each call of the step from the share of the run done: by
    steps, or by wall time under --max_minutes, whichever is further (the time left is that of the
    whole run, earlier parts counted). The rate is constant within a call (about a second of steps)."""

    def __init__(self, trainer, total_steps: int, max_minutes: float, deadline: float):
        t = trainer.config.training
        self.decay, self.total_steps, self.max_minutes, self.deadline = t.lr_decay, total_steps, max_minutes, deadline
        self.rates = [(trainer.g_optimizer.learning_rate, t.g_lr), (trainer.d_optimizer.learning_rate, t.d_lr)]
        self.trainer = trainer  # its rate_factor: CollapseGuard lowers it

    def on_steps_begin(self, step):
        by_time = 1.0 - (self.deadline - time.time()) / (self.max_minutes * 60) if self.max_minutes > 0 else 0.0
        scale = learning_rate_scale(max(step / self.total_steps, by_time), self.decay)
        for variable, base in self.rates:
            variable.assign(base * scale * self.trainer.rate_factor)

    def on_epoch_end(self, trainer, epoch, record):
        record["g_lr"] = float(trainer.g_optimizer.learning_rate.numpy())


def diversity(images) -> float:
    """The root mean per-pixel variance over a set of images: 0 when all are the same (a collapse).
    The mean squared distance between two of them is 2 N / (N - 1) times its square."""
    images = np.asarray(images, np.float64).reshape(len(images), -1)
    return float(np.sqrt(np.mean(np.var(images, axis=0))))


class CollapseGuard(Callback):
    """Rolls a collapsed or diverged run back (issue 51; the dense-vs-conv cartoon-faces source
    restarted collapsed runs from their last good checkpoint by hand). After each epoch it checks two
    signs of a run gone wrong:

    - a collapse: the `diversity` of the sampling generator on 64 fixed z falls below
      COLLAPSE_SHARE of the highest seen. The share is a choice, not a measurement: a collapse to
      near-identical faces falls far below it.
    - a divergence: D(x), the epoch's mean probability D gives the reals, rises more than
      DIVERGENCE_RISE above its value at the last epoch that passed. In 27 unforced minimax runs
      of `fast`, `dcgan`, `dense` and `illustration` (46 to 750 steps an epoch, 653 epoch-to-epoch
      changes) none rose more than 0.09; rates x20 for an epoch rose 0.28, and the one unforced
      collapse the diversity test caught rose 0.20 with it (docs/experiments.md, "A guard for
      divergence"). It counts from DIVERGENCE_AFTER updates on: before, D is first learning the
      reals (D(x) rose 0.21 in a healthy 8-step test run; after 1,000 updates the runs above rose
      at most 0.055). Only where D(x) is a probability and D updates every step: the minimax
      loss, no --balance.

    Then the networks, optimizers and regime state return to the last epoch that passed (the
    counters go on), both learning rates are halved, and one line says so."""

    COLLAPSE_SHARE = 0.25
    DIVERGENCE_RISE = 0.15
    DIVERGENCE_AFTER = 1000
    COUNT = 64

    def __init__(self, trainer, log: Log):
        self.log = log
        self.z = trainer.generator.sample_latents(self.COUNT, tf.constant(seeds.FIXED_Z, tf.int64) + 1)
        training = trainer.config.training
        self.watch_d_real = training.loss == "minimax" and training.balance == "none"
        self.highest, self.good, self.good_epoch, self.healthy = 0.0, None, 0, True
        self.good_d_real = None

    def problem(self, value: float, d_real: float | None) -> str | None:
        """What went wrong this epoch, in words, or None."""
        if value < self.COLLAPSE_SHARE * self.highest:
            return f"the samples' diversity fell to {value:.3f} (highest {self.highest:.3f}), a collapse"
        if d_real is not None and self.good_d_real is not None and d_real - self.good_d_real > self.DIVERGENCE_RISE:
            return (f"D(x) rose to {d_real:.2f} from {self.good_d_real:.2f} at epoch {self.good_epoch}, "
                    f"a divergence")
        return None

    def on_epoch_end(self, trainer, epoch, record):
        value = diversity(trainer.sampling_generator(self.z, training=False))
        record["diversity"] = value
        d_real = record.get("d_real") if self.watch_d_real else None
        problem = self.problem(value, d_real)
        self.healthy = problem is None
        if self.healthy:
            self.highest = max(self.highest, value)
            self.good_d_real = d_real if record["step"] >= self.DIVERGENCE_AFTER else None
            return
        if self.good is None or not tf.io.gfile.glob(self.good + ".index"):
            self.log(f"epoch {epoch}: {problem}, and no earlier checkpoint is left to roll back to")
            return
        kept = {v.name: v.numpy() for v in (trainer.step, trainer.epoch, trainer.trained_seconds)}
        trainer.checkpoint.read(self.good).expect_partial()
        for variable in (trainer.step, trainer.epoch, trainer.trained_seconds):
            variable.assign(kept[variable.name])
        trainer.rate_factor /= 2
        for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
            optimizer.learning_rate.assign(optimizer.learning_rate * 0.5)
        record["rolled_back_to"] = self.good_epoch
        self.log(f"epoch {epoch}: {problem}: rolled back to epoch {self.good_epoch}'s networks and halved both "
                 f"learning rates (now x{trainer.rate_factor:g} of the run's)")

    def on_checkpoint(self, trainer, epoch, prefix):
        if self.healthy:
            self.good, self.good_epoch = prefix, epoch


class SampleGrid(Callback):
    """fakes_NNNNNN.png: the sampling generator on the same fixed z (`seeds.FIXED_Z`) after every epoch."""

    def __init__(self, run_dir: str, generator, count: int):
        self.run_dir = run_dir
        self.fixed_z = generator.sample_latents(count, tf.constant(seeds.FIXED_Z, tf.int64))
        self.grid = None

    def on_epoch_end(self, trainer, epoch, record):
        images = trainer.sampling_generator(self.fixed_z, training=False)
        self.grid = run_folder.image_grid(data.to_uint8(images))
        run_folder.save_png(os.path.join(self.run_dir, f"fakes_{epoch:06d}.png"), self.grid)


class SaveGenerator(Callback):
    """generator.keras at each epoch's end and where training stops inside an epoch (the last
    minutes of a --max_minutes run are in it), written to a temporary name first so a crash
    never leaves half a file."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def on_epoch_end(self, trainer, epoch, record):
        self.save(trainer)

    def on_stop(self, trainer, step):
        self.save(trainer)

    def save(self, trainer):
        run_folder.save_model(trainer.sampling_generator, os.path.join(self.out_dir, run_folder.GENERATOR_FILE))


class StatsRecord(Callback):
    """Appends the epoch's record to stats.jsonl."""

    def __init__(self, path: str):
        self.path = path

    def on_epoch_end(self, trainer, epoch, record):
        run_folder.append_jsonl(self.path, record)


class LossPlot(Callback):
    """Redraws losses.png from stats.jsonl."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir

    def on_epoch_end(self, trainer, epoch, record):
        stats = run_folder.read_jsonl(os.path.join(self.run_dir, run_folder.STATS_FILE))
        run_folder.plot_losses(stats, os.path.join(self.run_dir, "losses.png"))


class TensorBoard(Callback):
    """Losses, D's outputs, ADA's p, speed and the sample grid, per epoch, for TensorBoard."""

    KEYS = ("d_loss", "g_loss", "zpred_loss", "d_real", "d_fake", "augment_p", "images_per_second")

    def __init__(self, run_dir: str, grid: SampleGrid):
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "tensorboard"))
        self.grid = grid

    def on_epoch_end(self, trainer, epoch, record):
        with self.writer.as_default(step=epoch):
            for key in self.KEYS:
                if key in record:
                    tf.summary.scalar(key, record[key])
            if self.grid.grid is not None:
                tf.summary.image("fakes", self.grid.grid[None], max_outputs=1)

    def on_train_end(self, trainer):
        self.writer.close()


class Progress(Callback):
    """The progress line after each call of the step (on a terminal) and the log line of each
    epoch, with time left."""

    def __init__(self, log: Log, epochs: int, steps_per_epoch: int, batch_size: int, deadline: float):
        self.log, self.epochs, self.steps_per_epoch = log, epochs, steps_per_epoch
        self.batch_size, self.deadline = batch_size, deadline
        self.interactive = sys.stdout.isatty()
        self.epoch_times: list[float] = []
        self.steps_in_epoch = 0
        # The run's first call traces and compiles the step: the rate counts the calls after it.
        self.call_started, self.compiled = time.time(), False
        self.timed_steps, self.timed_seconds = 0, 0.0

    def on_steps_begin(self, step):
        self.call_started = time.time()

    def on_steps_end(self, step, steps, means):
        self.steps_in_epoch += steps
        seconds = time.time() - self.call_started
        if self.compiled:
            self.timed_steps, self.timed_seconds = self.timed_steps + steps, self.timed_seconds + seconds
        self.compiled = True
        if not self.interactive:
            return
        position = step % self.steps_per_epoch or self.steps_per_epoch
        if self.timed_steps:
            rate = self.timed_steps / max(self.timed_seconds, 1e-9)
            pace = f"{rate * self.batch_size:.0f} img/s  epoch left {format_seconds((self.steps_per_epoch - position) / rate)}"
        else:
            pace = f"compiled the step in {seconds:.0f} s"
        print(f"\rstep {position}/{self.steps_per_epoch}  d {means['d_loss']:.3f}  g {means['g_loss']:.3f}  {pace}  ",
              end="", flush=True)

    def on_epoch_end(self, trainer, epoch, record):
        if self.interactive:
            print("\r", end="")
        self.epoch_times.append(record["epoch_seconds"])
        self.steps_in_epoch = 0
        remaining = min((self.epochs - epoch) * float(np.mean(self.epoch_times[-3:])), self.deadline - time.time())
        extra = f"  zpred {record['zpred_loss']:.3f}" if "zpred_loss" in record else ""
        extra += f"  augment p {record['augment_p']:.2f}" if "augment_p" in record else ""
        self.log(
            f"epoch {epoch}/{self.epochs}  d_loss {record['d_loss']:.3f}  g_loss {record['g_loss']:.3f}{extra}"
            f"  D(x) {record['d_real']:.2f}  D(G(z)) {record['d_fake']:.2f}"
            f"  updates D {record['d_updates']} G {record['g_updates']}"
            f"  {record['images_per_second']:.1f} img/s  {format_seconds(record['epoch_seconds'])}/epoch"
            f"  left {format_seconds(remaining)}"
        )


class ProgressGif(Callback):
    """progress.gif: the epochs' grids animated, when training stops."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir

    def on_train_end(self, trainer):
        run_folder.write_progress_gif(self.run_dir)


def default_callbacks(trainer, run_dir: str, out_dir: str, chief: bool, log: Log, extra: list,
                      steps_per_epoch: int, deadline: float) -> list[Callback]:
    """The standard side effects in their order. Only the chief writes the run folder; every worker
    saves its generator (into its own scratch folder), since saving reads replicated variables."""
    config = trainer.config
    callbacks: list[Callback] = []
    if config.training.lr_decay > 0:
        callbacks.append(LearningRateDecay(trainer, config.epochs * steps_per_epoch, config.max_minutes, deadline))
    callbacks.append(CollapseGuard(trainer, log))  # first: what the epoch writes is the rolled-back generator
    grid = SampleGrid(run_dir, trainer.generator, config.grid_size)
    if chief:
        callbacks.append(grid)
    callbacks.append(SaveGenerator(out_dir))
    if chief:
        callbacks += [
            *extra,
            StatsRecord(os.path.join(run_dir, run_folder.STATS_FILE)),
            LossPlot(run_dir),
            TensorBoard(run_dir, grid),
            Progress(log, config.epochs, steps_per_epoch, config.training.batch_size, deadline),
            ProgressGif(run_dir),
        ]
    return callbacks

