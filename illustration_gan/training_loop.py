"""The training step and the epoch loop.

One `tf.function` step does, under any `tf.distribute` strategy:
  1. in each replica: sample z, run G once and D on the real and the fake batch,
     and take both networks' gradients from that one forward pass (simultaneous
     gradients, as TF-GAN's GANTrainSteps(1, 1); the G gradient sees D before
     this step's D update);
  2. across replicas: sum the gradients, let `regimes.decide` choose from the
     batch's losses which networks update, and apply the updates under `tf.cond`
     (in cross-replica context, where conditional all-reduces are allowed).
The z of every step comes from a stateless seed (run seed, replica, step), so a
resumed run samples exactly the z an uninterrupted run would.

Checkpoints hold both networks, the z-predictor, both optimizers, the step and
epoch counters and the regime's state. Ctrl-C / SIGTERM and `--max_minutes`
save one and stop; a non-finite loss stops without saving, so the newest
checkpoint is the last good one.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from illustration_gan import UserError, augment, data, distribute, losses, regimes, run_folder
from illustration_gan.config import Config
from illustration_gan.networks import build_networks

EMA_RAMPUP = 0.05  # the EMA half-life is at most 5% of the images seen so far (stylegan2-ada's ema_rampup)

FIXED_Z_SEED = (20160101, 7)  # the seed of the per-epoch sample grid's z


def learning_rate_scale(progress: float, decay_fraction: float) -> float:
    """1 until the last `decay_fraction` of the run, then linearly down to 0 at its end.

    Budgeted training's linear decay (Li et al. 2020, arXiv:1905.04753): with a
    fixed budget, ending at a low learning rate beats any constant one.
    """
    if decay_fraction <= 0:
        return 1.0
    return float(np.clip((1.0 - progress) / decay_fraction, 0.0, 1.0))


class TrainingDiverged(RuntimeError):
    pass


class TrainingInterrupted(Exception):
    """Raised after a checkpoint was written because of a signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def make_optimizer(kind: str, learning_rate: float, beta1: float, beta2: float, precision: str):
    if kind == "adam":
        optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta1, beta_2=beta2)
    elif kind == "rmsprop":
        optimizer = keras.optimizers.RMSprop(learning_rate)
    else:
        raise ValueError(f"unknown optimizer {kind!r}")
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class GANTrainer:
    """Networks, optimizers, the compiled step and the checkpoint of one run."""

    def __init__(self, config: Config, strategy: tf.distribute.Strategy):
        self.config = config
        self.strategy = strategy
        t = config.training
        keras.mixed_precision.set_global_policy(config.precision)
        with strategy.scope():
            self.networks = build_networks(config.model)
            self.ema_generator = None
            if t.ema_kimg > 0:
                self.ema_generator = build_networks(config.model).generator
                for ema, live in zip(self.ema_generator.weights, self.generator.weights):
                    ema.assign(live)
            self.g_optimizer = make_optimizer(t.optimizer, t.g_lr, t.beta1, t.beta2, config.precision)
            self.d_optimizer = make_optimizer(t.optimizer, t.d_lr, t.beta1, t.beta2, config.precision)
            self.g_optimizer.build(self.generator_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.boost_mode = tf.Variable(0, dtype=tf.int32, trainable=False, name="boost_mode")
            self.boost_left = tf.Variable(0, dtype=tf.int32, trainable=False, name="boost_left")
            self.augment_p = tf.Variable(0.0, trainable=False, name="augment_p")  # ADA's p
            self.real_sign_sum = tf.Variable(0.0, trainable=False, name="real_sign_sum")  # since p's last change
        parts = dict(
            generator=self.generator,
            discriminator=self.discriminator,
            g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer,
            step=self.step,
            epoch=self.epoch,
            boost_mode=self.boost_mode,
            boost_left=self.boost_left,
        )
        if self.z_predictor is not None:
            parts["z_predictor"] = self.z_predictor
        if self.ema_generator is not None:
            parts["ema_generator"] = self.ema_generator
        self.augment_policy = augment.parse_policy(t.augment)
        self.ada_policy = augment.parse_policy(t.ada_augment)
        if self.ada_policy:
            parts.update(augment_p=self.augment_p, real_sign_sum=self.real_sign_sum)
        self.checkpoint = tf.train.Checkpoint(**parts)
        # XLA compiles the replica's forward and backward pass (no collectives inside it).
        self._gradients = (
            tf.function(self._losses_and_gradients, jit_compile=True) if config.xla else self._losses_and_gradients
        )
        self.train_step = tf.function(self._train_step)

    @property
    def generator(self):
        return self.networks.generator

    @property
    def discriminator(self):
        return self.networks.discriminator

    @property
    def z_predictor(self):
        return self.networks.z_predictor

    @property
    def sampling_generator(self):
        """The generator to look at and to save: the weight average when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    @property
    def generator_variables(self):
        """G's weights plus the z-predictor's: both minimise the generator-side loss."""
        extra = self.z_predictor.trainable_variables if self.z_predictor is not None else []
        return self.generator.trainable_variables + extra

    # -- the step ----------------------------------------------------------

    def _seed(self, salt: int, replica=0):
        return tf.stack([tf.cast(self.config.seed * 1_000_003 + salt * 1009 + replica, tf.int64), self.step])

    def _replica_step(self, real, swap):
        context = tf.distribute.get_replica_context()
        metrics, d_grads, g_grads = self._gradients(real, swap, tf.cast(context.replica_id_in_sync_group, tf.int64))
        # One packed all-reduce per step (gradients were scaled by 1/global batch, so SUM is the mean).
        return context.all_reduce(tf.distribute.ReduceOp.SUM, (metrics, d_grads, g_grads))

    def _losses_and_gradients(self, real, swap, replica):
        """One replica's forward pass, losses and gradients (no cross-replica communication)."""
        t = self.config.training
        batch = tf.shape(real)[0]
        z = self.generator.sample_latents(batch, self._seed(1, replica))

        def average(per_example):
            return tf.nn.compute_average_loss(tf.cast(per_example, tf.float32), global_batch_size=t.batch_size)

        def average_scores(per_score):  # D gives one score per pack of config.model.pack images (PacGAN)
            global_scores = t.batch_size // self.config.model.pack
            return tf.nn.compute_average_loss(tf.cast(per_score, tf.float32), global_batch_size=global_scores)

        with tf.GradientTape(persistent=True) as tape:
            fake, features = self.generator(z, training=True, return_features=True)
            d_real_in, d_fake_in = real, fake
            if self.augment_policy or self.ada_policy:  # the same transforms on both sides, differentiable for G
                p, ada = self.augment_p, self.ada_policy
                d_real_in = augment.diff_augment(real, self.augment_policy, self._seed(5, replica), ada, p)
                d_fake_in = augment.diff_augment(fake, self.augment_policy, self._seed(6, replica), ada, p)
            real_scores, fake_scores, real_grads, hidden = self._discriminate(d_real_in, d_fake_in, t.r1_gamma > 0)
            if t.loss == "wasserstein":
                d_loss = average_scores(losses.wasserstein_discriminator_loss(real_scores, fake_scores))
                g_loss = average_scores(losses.wasserstein_generator_loss(fake_scores))
            elif t.loss == "hinge":
                d_loss = average_scores(losses.hinge_discriminator_loss(real_scores, fake_scores))
                g_loss = average_scores(losses.hinge_generator_loss(fake_scores))
            else:
                d_per_score = losses.minimax_discriminator_loss(real_scores, fake_scores, t.label_smoothing, swap)
                d_loss = average_scores(d_per_score)
                g_loss = average_scores(losses.non_saturating_generator_loss(fake_scores, t.label_smoothing))
            d_total, g_total = d_loss, g_loss
            metrics = {"d_loss": d_loss, "g_loss": g_loss}
            if t.gp_weight > 0:
                penalty = average(
                    losses.wasserstein_gradient_penalty(
                        self.discriminator, real, tf.stop_gradient(fake), self._seed(2, replica)
                    )
                )
                d_total += t.gp_weight * penalty
                metrics["gradient_penalty"] = penalty
            if t.r1_gamma > 0:  # on the images D saw, augmented or not (as stylegan2-ada)
                penalty = average(losses.r1_penalty(real_grads))
                d_total += 0.5 * t.r1_gamma * penalty
                metrics["r1_penalty"] = penalty
            if t.mode_seeking > 0:  # per pair of this replica's batch, averaged over the global pairs
                pair_loss = tf.nn.compute_average_loss(
                    losses.mode_seeking_loss(z, fake), global_batch_size=max(1, t.batch_size // 2)
                )
                g_total += t.mode_seeking * pair_loss
                metrics["mode_seeking_loss"] = pair_loss
            if t.feature_matching > 0:  # a batch statistic: each replica's share of the cross-replica sum
                matching_loss = (
                    losses.split_feature_matching_loss if t.feature_matching_split else losses.feature_matching_loss
                )
                matching = matching_loss(*hidden) / tf.cast(
                    tf.distribute.get_replica_context().num_replicas_in_sync, tf.float32
                )
                g_total += t.feature_matching * matching
                metrics["feature_matching_loss"] = matching
            if self.z_predictor is not None:
                zpred_loss = average(losses.z_prediction_loss(z, self.z_predictor(features, training=True)))
                g_total += t.zpred_weight * zpred_loss
                metrics["zpred_loss"] = zpred_loss
            d_scaled = self._scale(self.d_optimizer, d_total)
            g_scaled = self._scale(self.g_optimizer, g_total)
        d_grads = tape.gradient(d_scaled, self.discriminator.trainable_variables)
        g_grads = tape.gradient(g_scaled, self.generator_variables)
        del tape
        to_prob = tf.sigmoid if t.loss == "minimax" else (lambda s: s)  # D's probability, or its raw score
        metrics["d_real"] = average_scores(to_prob(real_scores))
        metrics["d_fake"] = average_scores(to_prob(fake_scores))
        if self.ada_policy:
            metrics["real_sign"] = average_scores(tf.sign(real_scores))  # ADA's r_t over the global batch
        return metrics, d_grads, g_grads

    def _discriminate(self, real, fake, with_real_gradients):
        """D's scores on reals and fakes, the reals' input gradients when R1 needs them, and
        D's hidden features of both (real, fake) when feature matching needs them.

        d_batch="separate" (the tutorial) normalises each batch by its own batch-norm
        statistics, which hides from D's deeper layers any shift that all fakes share;
        "joint" scores both in one batch, so they share the statistics.
        """
        t = self.config.training
        with_features = t.feature_matching > 0

        def d(images):  # (scores, hidden features or None)
            out = self.discriminator(images, training=True, return_features=with_features)
            return out if with_features else (out, None)

        def halves(x):
            return (None, None) if x is None else tf.split(x, 2)

        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(real)
            if t.d_batch == "joint":
                scores, hidden = d(tf.concat([real, fake], 0))
                (real_scores, fake_scores), (real_hidden, fake_hidden) = halves(scores), halves(hidden)
            else:
                (real_scores, real_hidden), (fake_scores, fake_hidden) = d(real), d(fake)
        real_grads = tape.gradient(real_scores, real) if with_real_gradients else None
        return real_scores, fake_scores, real_grads, (real_hidden, fake_hidden)

    @staticmethod
    def _scale(optimizer, loss):
        return optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss

    def _apply_d(self, grads):
        self.d_optimizer.apply(grads, self.discriminator.trainable_variables)
        clip = self.config.training.clip_weights
        if clip > 0:
            for variable in self.discriminator.trainable_variables:
                variable.assign(tf.clip_by_value(variable, -clip, clip))
        return tf.constant(True)

    def _apply_g(self, grads):
        self.g_optimizer.apply(grads, self.generator_variables)
        if self.ema_generator is not None:
            self._update_ema()
        return tf.constant(True)

    def ema_beta(self, images_seen):
        """Per-update decay for a half-life of ema_kimg thousand images (ramped up early on)."""
        half_life = tf.minimum(self.config.training.ema_kimg * 1000.0, tf.cast(images_seen, tf.float32) * EMA_RAMPUP)
        return tf.pow(0.5, self.config.training.batch_size / tf.maximum(half_life, 1e-8))

    def _update_ema(self):
        beta = self.ema_beta((self.step + 1) * self.config.training.batch_size)
        for ema, live in zip(self.ema_generator.trainable_variables, self.generator.trainable_variables):
            ema.assign(live + (ema - live) * tf.cast(beta, ema.dtype))
        for ema, live in zip(self.ema_generator.non_trainable_variables, self.generator.non_trainable_variables):
            ema.assign(live)  # batch-norm statistics are copied, not averaged

    def _train_step(self, iterator):
        t = self.config.training
        k = tf.random.stateless_uniform([], self._seed(3))
        noise_draw = tf.random.stateless_uniform([], self._seed(4))
        swap = regimes.swap_labels(t.balance, k, noise_draw, t.noisy_labels, self.boost_mode)
        real = next(iterator)
        reduced = self.strategy.run(self._replica_step, args=(real, swap))
        # Every replica now holds the same sums; continue with this worker's first copy.
        metrics, d_grads, g_grads = tf.nest.map_structure(
            lambda value: self.strategy.experimental_local_results(value)[0], reduced
        )
        decision = regimes.decide(
            t.balance,
            metrics["d_loss"],
            metrics["g_loss"],
            step=self.step,
            k=k,
            boost_mode=self.boost_mode,
            boost_left=self.boost_left,
            margin=t.margin,
            monitor_ratio=t.monitor_ratio,
            n_critic=t.n_critic,
        )
        no_update = lambda: tf.constant(False)  # noqa: E731
        d_updated = tf.cond(decision.update_d, lambda: self._apply_d(d_grads), no_update)
        g_updated = tf.cond(decision.update_g, lambda: self._apply_g(g_grads), no_update)
        self.boost_mode.assign(decision.boost_mode)
        self.boost_left.assign(decision.boost_left)
        if self.ada_policy:
            self._adapt_augmentation(metrics["real_sign"])
        self.step.assign_add(1)
        metrics["d_updates"] = tf.cast(d_updated, tf.float32)
        metrics["g_updates"] = tf.cast(g_updated, tf.float32)
        metrics["labels_swapped"] = tf.cast(swap, tf.float32)
        return metrics

    def _adapt_augmentation(self, real_sign):
        """Every ADA_INTERVAL images, moves p by ADA's controller from the mean r_t since the last move."""
        t = self.config.training
        interval = max(1, augment.ADA_INTERVAL // t.batch_size)  # in steps
        self.real_sign_sum.assign_add(real_sign)

        def adjust():
            mean_sign = self.real_sign_sum / interval
            images = interval * t.batch_size
            self.augment_p.assign(augment.adjusted_probability(self.augment_p, mean_sign, t.ada_target, images))
            self.real_sign_sum.assign(0.0)
            return tf.constant(True)

        tf.cond((self.step + 1) % interval == 0, adjust, lambda: tf.constant(False))

    # -- sampling ----------------------------------------------------------

    def fixed_latents(self, count: int) -> tf.Tensor:
        return self.generator.sample_latents(count, tf.constant(FIXED_Z_SEED, tf.int64))

    def sample_grid(self, z) -> np.ndarray:
        images = self.sampling_generator(z, training=False)
        return run_folder.image_grid(data.to_uint8(images))


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


def _format_seconds(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class _Log:
    """Writes a line to stdout and to the run's log.txt."""

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

    `callbacks` are objects with an `on_epoch_end(trainer, epoch, record)` method,
    called on the chief after each epoch's files are written; they may add keys
    to `record` (stats.jsonl) before it is written.
    """
    chief = distribute.is_chief(strategy)
    out_dir = distribute.write_dir(run_dir, strategy)
    os.makedirs(out_dir, exist_ok=True)
    trainer = GANTrainer(config, strategy)
    t = config.training
    global_batch = t.batch_size
    steps_per_epoch = source.num_images // global_batch
    if steps_per_epoch == 0:
        raise UserError(f"{source.num_images} images are fewer than one batch of {global_batch}")
    per_replica, m = global_batch // strategy.num_replicas_in_sync, config.model
    if per_replica % m.d_batch_multiple or (t.feature_matching_split and per_replica % 2):
        raise UserError(
            f"each of the {strategy.num_replicas_in_sync} replicas gets {per_replica} images, which do not split "
            f"into packs of {m.pack} and stddev groups of {max(1, m.minibatch_stddev)} packs (or halves, "
            "with --feature_matching_split)"
        )

    manager = tf.train.CheckpointManager(
        trainer.checkpoint, os.path.join(out_dir, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    if resume:
        if manager.latest_checkpoint is None:
            raise UserError(f"nothing to resume: no checkpoint in {run_dir}/checkpoints")
        trainer.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    start_epoch = int(trainer.epoch.numpy())
    steps_done = int(trainer.step.numpy()) - start_epoch * steps_per_epoch
    steps_done = min(max(steps_done, 0), steps_per_epoch - 1)

    stats_path = os.path.join(run_dir, run_folder.STATS_FILE)
    if chief and not resume:
        options = run_folder.training_options(config, source, strategy.num_replicas_in_sync)
        run_folder.write_json(os.path.join(run_dir, run_folder.OPTIONS_FILE), options)
    log = _Log(os.path.join(run_dir, "log.txt") if chief else None)
    if resume and chief:
        run_folder.truncate_stats(stats_path, start_epoch)
        log(f"resuming {run_dir} at epoch {start_epoch + 1}, step {int(trainer.step.numpy())}")

    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: data.training_dataset(
            source, config.model.image_size, global_batch, seed=config.seed + start_epoch, input_context=ctx
        )
    )
    iterator = iter(dataset)
    fixed_z = trainer.fixed_latents(config.grid_size)
    writer = tf.summary.create_file_writer(os.path.join(run_dir, "tensorboard")) if chief else None

    stop = _StopFlag()
    previous_handlers = _install_signal_handlers(stop)
    run_started = time.time()
    deadline = run_started + config.max_minutes * 60 if config.max_minutes > 0 else math.inf
    total_steps = config.epochs * steps_per_epoch
    base_rates = [(trainer.g_optimizer.learning_rate, t.g_lr), (trainer.d_optimizer.learning_rate, t.d_lr)]

    def progress(step: int) -> float:
        """Share of the run done: by steps, or by wall time under --max_minutes, whichever is further."""
        by_time = (time.time() - run_started) / (config.max_minutes * 60) if config.max_minutes > 0 else 0.0
        return max(step / total_steps, by_time)

    interactive = sys.stdout.isatty()
    epoch_times: list[float] = []
    stopped_early = False
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            sums: dict[str, float] = {}
            steps_this_epoch = steps_per_epoch - steps_done
            started = time.time()
            for i in range(steps_this_epoch):
                if t.lr_decay > 0:
                    # Steps done so far, counted here rather than read back from the step variable.
                    scale = learning_rate_scale(progress(epoch * steps_per_epoch - steps_this_epoch + i), t.lr_decay)
                    for variable, base in base_rates:
                        variable.assign(base * scale)
                metrics = trainer.train_step(iterator)
                values = {k: float(v) for k, v in metrics.items()}
                if not (math.isfinite(values["d_loss"]) and math.isfinite(values["g_loss"])):
                    raise TrainingDiverged(
                        f"non-finite loss at epoch {epoch}, step {int(trainer.step.numpy())} "
                        f"(d_loss={values['d_loss']}, g_loss={values['g_loss']}); the newest checkpoint in "
                        f"{run_dir}/checkpoints is the last good one. Try lower learning rates."
                    )
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                if interactive:
                    rate = (i + 1) * global_batch / (time.time() - started)
                    print(
                        f"\repoch {epoch} {i + 1}/{steps_this_epoch}  d {values['d_loss']:.3f}  "
                        f"g {values['g_loss']:.3f}  {rate:.0f} img/s",
                        end="",
                        flush=True,
                    )
                if stop.signum or time.time() > deadline:
                    break
            if interactive:
                print("\r", end="")
            steps_run = i + 1
            if steps_run < steps_this_epoch:  # stopped inside the epoch: checkpoint the step, not the epoch
                manager.save()
                stopped_early = True
                break
            steps_done = 0
            elapsed = time.time() - started
            epoch_times.append(elapsed)
            trainer.epoch.assign(epoch)
            checkpoint_path = manager.save()
            record = {k: v / steps_run for k, v in sums.items() if k not in ("d_updates", "g_updates", "labels_swapped")}
            record.update(
                epoch=epoch,
                step=int(trainer.step.numpy()),
                d_updates=int(sums["d_updates"]),
                g_updates=int(sums["g_updates"]),
                labels_swapped=int(sums["labels_swapped"]),
                images_per_second=steps_run * global_batch / elapsed,
                epoch_seconds=elapsed,
                wall_time=time.time(),
                checkpoint=os.path.basename(checkpoint_path),
            )
            if trainer.ada_policy:
                record["augment_p"] = float(trainer.augment_p.numpy())
            if t.lr_decay > 0:
                record["g_lr"] = float(trainer.g_optimizer.learning_rate.numpy())
            grid = trainer.sample_grid(fixed_z)
            _save_keras_generator(trainer, out_dir)
            if chief:
                run_folder.save_png(os.path.join(run_dir, f"fakes_{epoch:06d}.png"), grid)
                for callback in callbacks or []:
                    callback.on_epoch_end(trainer, epoch, record)
                run_folder.append_jsonl(stats_path, record)
                run_folder.plot_losses(run_folder.read_jsonl(stats_path), os.path.join(run_dir, "losses.png"))
                with writer.as_default(step=epoch):
                    for k in ("d_loss", "g_loss", "zpred_loss", "d_real", "d_fake", "augment_p", "images_per_second"):
                        if k in record:
                            tf.summary.scalar(k, record[k])
                    tf.summary.image("fakes", grid[None], max_outputs=1)
                remaining = min((config.epochs - epoch) * float(np.mean(epoch_times[-3:])), deadline - time.time())
                extra = f"  zpred {record['zpred_loss']:.3f}" if "zpred_loss" in record else ""
                extra += f"  augment p {record['augment_p']:.2f}" if "augment_p" in record else ""
                log(
                    f"epoch {epoch}/{config.epochs}  d_loss {record['d_loss']:.3f}  g_loss {record['g_loss']:.3f}{extra}"
                    f"  D(x) {record['d_real']:.2f}  D(G(z)) {record['d_fake']:.2f}"
                    f"  updates D {record['d_updates']} G {record['g_updates']}"
                    f"  {record['images_per_second']:.1f} img/s  {_format_seconds(elapsed)}/epoch"
                    f"  left {_format_seconds(remaining)}"
                )
            if stop.signum or time.time() > deadline:
                stopped_early = epoch < config.epochs
                break
    finally:
        _restore_signal_handlers(previous_handlers)
        if chief and writer is not None:
            writer.flush()
        if chief:
            run_folder.write_progress_gif(run_dir)
        if not chief and not keep_worker_files:
            shutil.rmtree(out_dir, ignore_errors=True)
    if stopped_early and chief:
        reason = signal.Signals(stop.signum).name if stop.signum else f"--max_minutes {config.max_minutes:g}"
        log(
            f"stopped by {reason} at epoch {int(trainer.epoch.numpy())}, step {int(trainer.step.numpy())}; "
            f"checkpoint written. Continue with: python train.py --TYPE train --resume {run_dir}"
        )
    log.close()
    if stop.signum:
        raise TrainingInterrupted(stop.signum)
    return trainer


def _save_keras_generator(trainer: GANTrainer, out_dir: str) -> None:
    """generator.keras, written to a temporary name first so a crash never leaves half a file."""
    path = os.path.join(out_dir, run_folder.GENERATOR_FILE)
    tmp = os.path.join(out_dir, "generator.tmp.keras")
    trainer.sampling_generator.save(tmp)
    os.replace(tmp, path)
