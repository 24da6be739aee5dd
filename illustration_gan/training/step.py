"""The networks, their optimizers and the compiled training step of one run.

`GANTrainer` composes the parts chosen once from the config: the objective
(`objectives`) and D's regularising terms (`terms`), the augmenter that owns
ADA's p (`augment`), the update rule with its state (`regimes`) and the
generator EMA (`ema`).

Every source trains D first and G against the updated D (the PyTorch DCGAN
tutorial; tdrussell/IllustrationGAN train.py lines 107-127; jhayes14/GAN
train.py lines 111-117; Edouard99/GAN Trainings/*.py). With
`update_order="alternating"` one compiled step does, under any `tf.distribute`
strategy, a D phase and then a G phase:
  1. D phase, in each replica: G(z) (no gradient to G), D on the augmented reals
     and fakes (one call on both when D scores each image alone, as without batch
     norm), D's loss and terms, D's gradients; one all-reduce; then, in
     cross-replica context, the regime decides and D's update is applied;
  2. G phase, in each replica: G(z) again under a tape (the same z, or a fresh one
     where the source draws one), D' (now updated) on the same augmented fakes,
     G's loss and gradients; one all-reduce; G's update and the EMA.
Under a distribution strategy G's forward runs twice: a gradient tape cannot span the
cross-replica update between the phases, and TensorFlow refuses `merge_call` (how
optimizers synchronise) inside the control flow a conditional update needs; the second
pass also updates G's batch-norm moving averages a second time with the same batch
statistics (they are used only for sampling). Under the default strategy (one device,
no replicas) nothing crosses replicas, so where G's phase uses the D phase's z and always
runs, one tape spans both phases and G's forward runs once, as in the PyTorch tutorial
(`fake` is computed once, `netD(fake.detach())` for D, `netD(fake)` for G): the same
gradients, one G forward fewer per step (`reuses_g_forward`).
`update_order="simultaneous"` takes both gradients from one forward pass and
applies them together (G's gradient sees D before this step's update).

IllustrationGAN's z-predictor has its own phase after each G update (its
train.py lines 125-127, model.py lines 170-172): fresh z, the MSE of the predicted z, an Adam of its own
over G's fully connected layers and the predictor.

The z of every phase comes from a stateless seed (run seed, salt, replica, step),
so a resumed run samples exactly the z an uninterrupted run would.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from illustration_gan import data, losses, run_folder
from illustration_gan.config import Config
from illustration_gan.networks import build_networks
from illustration_gan.training import augment, objectives, regimes, terms
from illustration_gan.training.ema import GeneratorEMA
from illustration_gan.training.optimizers import make_optimizer

FIXED_Z_SEED = (20160101, 7)  # the seed of the per-epoch sample grid's z
# Salts of the stateless seeds, one per random draw of a step.
Z_SALT, GP_SALT, REGIME_SALT, AUGMENT_REAL_SALT, AUGMENT_FAKE_SALT = 1, 2, 3, 5, 6
FRESH_G_Z_SALT, ZPRED_SALT, BOOST_D_SALT, SECOND_G_SALT = 7, 8, 9, 10


def _scaled(optimizer, loss):
    return optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss


class GANTrainer:
    """Networks, optimizers, counters, the compiled `train_step` and the checkpoint of one run."""

    def __init__(self, config: Config, strategy: tf.distribute.Strategy):
        self.config, self.strategy = config, strategy
        t = config.training
        if config.precision == "auto":
            raise ValueError('precision "auto" is chosen by training.train (training/precision.py); give a policy here')
        keras.mixed_precision.set_global_policy(config.precision)
        self.objective = objectives.make_objective(t)
        self.terms = terms.make_terms(config)
        self.simultaneous = t.update_order == "simultaneous"
        # Whether a step can leave G out (n_critic, boosts): only then is G's phase built under a condition.
        self._g_may_skip = t.n_critic > 1 or t.balance == "boost"
        # Constructed outside any strategy's scope with the default strategy: one replica, no merge_call.
        default_strategy = not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy()
        self.reuses_g_forward = (
            default_strategy and not self.simultaneous and not self._g_may_skip and not t.fresh_g_z
        )
        keras.utils.set_random_seed(config.seed)  # the initial weights follow the run's seed
        with strategy.scope():
            self.networks = build_networks(config.model)
            self.ema = None
            if t.ema_kimg > 0:
                ema_copy = build_networks(config.model).generator
                self.ema = GeneratorEMA(ema_copy, self.generator, t.ema_kimg, t.batch_size)
            self.g_optimizer = make_optimizer(t.optimizer, t.g_lr, t, config.precision)
            self.d_optimizer = make_optimizer(t.optimizer, t.d_lr, t, config.precision)
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.zpred_optimizer = None
            if self.z_predictor is not None:  # IllustrationGAN's own Adam for the z-prediction step
                self.zpred_optimizer = make_optimizer("adam", t.g_lr, t, config.precision)
                self.zpred_optimizer.build(self.zpred_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            # Wall-clock seconds of training in all parts of the run, so --max_minutes spans resumes.
            self.trained_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="trained_seconds")
            self.regime = regimes.Regime(t)
            self.augmenter = augment.Augmenter(t.augment, t.ada_augment, t.ada_target, t.batch_size)
        parts = dict(
            generator=self.generator, discriminator=self.discriminator, g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer, step=self.step, epoch=self.epoch,
            **self.regime.checkpoint_items(), **self.augmenter.checkpoint_items(),
        )
        if self.z_predictor is not None:
            parts.update(z_predictor=self.z_predictor, zpred_optimizer=self.zpred_optimizer)
        if self.ema is not None:
            parts["ema_generator"] = self.ema.generator
        # A run written before 2026-12-07 has no trained_seconds: it resumes with the minutes counted from 0.
        self.checkpoint_before_seconds = tf.train.Checkpoint(**parts)
        self.checkpoint = tf.train.Checkpoint(**parts, trained_seconds=self.trained_seconds)
        self.train_step = tf.function(self._train_step)
        self.train_steps = tf.function(self._train_steps)

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
        return self.ema.generator if self.ema is not None else self.generator

    @property
    def zpred_variables(self):
        """What the z-prediction step trains: G's fully connected layers and the predictor."""
        return self.generator.fully_connected.trainable_variables + self.z_predictor.trainable_variables

    def seed(self, salt: int, replica=0):
        """The stateless seed of one random draw of this step (and replica)."""
        return tf.stack([tf.cast(self.config.seed * 1_000_003 + salt * 1009 + replica, tf.int64), self.step])

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics a step returns (summed over a call by `train_steps`)."""
        t = self.config.training
        names = ["d_loss", *(term.name for term in self.terms), "d_real", "d_fake", "g_loss", "d_updates",
                 "g_updates", "labels_swapped"]
        names += ["real_sign"] if self.augmenter.adaptive else []
        names += [] if self.simultaneous else ["g_measured"]
        names += ["margin_repeats"] if t.balance == "margin" and not self.simultaneous else []
        names += ["zpred_loss"] if self.z_predictor is not None else []
        return tuple(names)

    # -- the step: cross-replica orchestration ------------------------------

    def _train_steps(self, iterator, count):
        """Up to `count` steps in one call, as Keras' `steps_per_execution`: the sums of their
        metrics, how many ran, and the last step's losses. It stops after a step whose losses are
        not finite (its update is applied; the checkpoint on disk stays the last good one)."""
        sums = {name: tf.constant(0.0) for name in self.metric_names}
        last = {"d_loss": tf.constant(0.0), "g_loss": tf.constant(0.0)}
        ran = tf.constant(0)
        while ran < count and tf.math.is_finite(last["d_loss"]) and tf.math.is_finite(last["g_loss"]):
            metrics = self._train_step(iterator)
            if set(metrics) != set(sums):
                raise ValueError(f"metric_names {sorted(sums)} differ from the step's metrics {sorted(metrics)}")
            sums = {name: sums[name] + tf.cast(metrics[name], tf.float32) for name in sums}
            last = {"d_loss": tf.cast(metrics["d_loss"], tf.float32), "g_loss": tf.cast(metrics["g_loss"], tf.float32)}
            ran += 1
        return sums, ran, last

    def _train_step(self, iterator):
        real = next(iterator)
        plan = self.regime.plan(tf.random.stateless_uniform([], self.seed(REGIME_SALT)), self.step)
        metrics = self._simultaneous(real, plan) if self.simultaneous else self._alternating(real, plan)
        if self.z_predictor is not None and self._g_may_skip:
            metrics["zpred_loss"] = tf.cond(metrics["g_updates"] > 0, self._z_prediction_update, _zero)
        elif self.z_predictor is not None:
            metrics["zpred_loss"] = self._z_prediction_update()
        if self.augmenter.adaptive:
            self.augmenter.adapt(metrics["real_sign"], self.step)
        self.step.assign_add(1)
        metrics["labels_swapped"] = tf.cast(plan.swap_labels, tf.float32)
        return metrics

    def _alternating(self, real, plan):
        t = self.config.training
        gate = lambda d_loss, step: (plan.d_updates > 0) & self.regime.allows_d(d_loss, step)  # noqa: E731
        g_salt = FRESH_G_Z_SALT if t.fresh_g_z or t.balance == "boost" else Z_SALT
        if self.reuses_g_forward:
            metrics, fake = self._d_then_g_one_forward(real, plan.swap_labels, gate)
        else:
            metrics, fake = self._d_then_g(real, plan, gate, g_salt)
        if t.balance == "margin":
            self._margin_repeats(real, fake, g_salt, metrics)
        if t.balance == "monitor":
            self.regime.record_g_loss(metrics["g_loss"])
        return metrics

    def _d_then_g(self, real, plan, gate, g_salt):
        """The D phase, then the G phase with G's forward run again (any strategy, any rule)."""
        boost = self.config.training.balance == "boost"  # only the boost rule updates a network twice in a step
        if boost:  # a boost's last iteration: one more D update, with normal labels, first
            extra_d = tf.cond(plan.d_updates > 1, lambda: self._d_update(real, False, BOOST_D_SALT)[0]["d_updates"], _zero)
        metrics, fake = self._d_update(real, plan.swap_labels, Z_SALT, gate=gate)
        if boost:
            metrics["d_updates"] += extra_d
        if self._g_may_skip:
            first = tf.cond(plan.g_updates > 0, lambda: self._g_update(g_salt), lambda: {"g_loss": 0.0, "g_updates": 0.0})
        else:
            first = self._g_update(g_salt)
        second = tf.cond(plan.g_updates > 1, lambda: self._g_update(SECOND_G_SALT)["g_updates"], _zero) if boost else 0.0
        metrics.update(g_loss=first["g_loss"], g_updates=first["g_updates"] + second, g_measured=first["g_updates"])
        return metrics, fake

    def _d_then_g_one_forward(self, real, swap, gate):
        """The D phase and G's update with one G forward under one tape (`reuses_g_forward`)."""
        z = self._latents(Z_SALT, 0, tf.shape(real)[0])
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            with tape.stop_recording():
                metrics, _ = self._d_update(real, swap, Z_SALT, fake=tf.stop_gradient(fake), gate=gate)
            g_loss, scaled = self._generator_loss(fake, 0)
        self._apply_g(tape.gradient(scaled, self.generator.trainable_variables))
        metrics.update(g_loss=g_loss, g_updates=tf.constant(1.0), g_measured=tf.constant(1.0))
        return metrics, tf.stop_gradient(fake)

    def _simultaneous(self, real, plan):
        reduced = self.strategy.run(self._both_replica, args=(real, plan.swap_labels))
        metrics, d_grads, g_grads = self._first_copy(reduced)
        allowed = self.regime.allows_d(metrics["d_loss"], self.step)
        metrics["d_updates"] = tf.cast(tf.cond(allowed, lambda: self._apply_d(d_grads), _false), tf.float32)
        metrics["g_updates"] = tf.cast(tf.cond(plan.g_updates > 0, lambda: self._apply_g(g_grads), _false), tf.float32)
        if self.config.training.balance == "monitor":
            self.regime.record_g_loss(metrics["g_loss"])
        return metrics

    def _d_update(self, real, swap, z_salt, fake=None, gate=None):
        """A D phase and, if `gate(d_loss, step)` allows, D's update; returns its metrics and the fakes."""
        if fake is None:
            run = lambda r, s: self._d_replica(r, s, z_salt)  # noqa: E731
            reduced, fake = self.strategy.run(run, args=(real, swap))
        else:
            reduced, _ = self.strategy.run(lambda r, s, f: self._d_replica(r, s, z_salt, f), args=(real, swap, fake))
        metrics, grads = self._first_copy(reduced)
        allowed = gate(metrics["d_loss"], self.step) if gate else tf.constant(True)
        metrics["d_updates"] = tf.cast(tf.cond(allowed, lambda: self._apply_d(grads), _false), tf.float32)
        return metrics, fake

    def _g_update(self, z_salt):
        """A G phase against the current D and G's update."""
        metrics, grads = self._first_copy(self.strategy.run(lambda: self._g_replica(z_salt)))
        self._apply_g(grads)
        return {"g_loss": metrics["g_loss"], "g_updates": tf.constant(1.0)}

    def _margin_repeats(self, real, fake, g_salt, metrics):
        """jhayes14/GAN's margin rule (see regimes.margin_loop); D repeats on the same fakes, G on the same z."""
        t = self.config.training
        repeats, side = regimes.margin_loop(
            metrics["d_loss"] / 2,  # Keras' BCE over the joint batch of 2n images, as the source compares
            metrics["g_loss"], t.margin, t.margin_repeats,
            train_d_again=lambda: self._d_update(real, False, Z_SALT, fake=fake)[0]["d_loss"] / 2,
            train_g_again=lambda: self._g_update(g_salt)["g_loss"],
        )
        repeats = tf.cast(repeats, tf.float32)
        metrics["d_updates"] += tf.where(side > 0, repeats, 0.0)
        metrics["g_updates"] += tf.where(side < 0, repeats, 0.0)
        metrics["margin_repeats"] = repeats

    def _z_prediction_update(self):
        loss, grads = self._first_copy(self.strategy.run(self._zpred_replica))
        self.zpred_optimizer.apply(grads, self.zpred_variables)
        return loss

    def _first_copy(self, reduced):
        """Every replica holds the same all-reduced sums; continue with this worker's first copy."""
        return tf.nest.map_structure(lambda value: self.strategy.experimental_local_results(value)[0], reduced)

    def _apply_d(self, grads):
        self.d_optimizer.apply(grads, self.discriminator.trainable_variables)
        clip = self.config.training.clip_weights
        if clip > 0:  # WGAN's weight clipping after each critic step
            for variable in self.discriminator.trainable_variables:
                variable.assign(tf.clip_by_value(variable, -clip, clip))
        return tf.constant(True)

    def _apply_g(self, grads):
        self.g_optimizer.apply(grads, self.generator.trainable_variables)
        if self.ema is not None:
            self.ema.update(self.step)
        return tf.constant(True)

    # -- the step: what each replica computes --------------------------------

    def _average(self, per_example):
        """A per-example loss as this replica's share of the global batch mean (so all-reduce SUM is the mean)."""
        batch = self.config.training.batch_size
        return tf.nn.compute_average_loss(tf.cast(per_example, tf.float32), global_batch_size=batch)

    def _latents(self, salt: int, replica, count):
        return self.generator.sample_latents(count, self.seed(salt, replica))

    def _d_replica(self, real, swap, z_salt, fake=None):
        """D's loss, terms and gradients on the reals and fakes (G gets no gradient here)."""
        replica = _replica_id()
        if fake is None:
            fake = self.generator(self._latents(z_salt, replica, tf.shape(real)[0]), training=True)
        with tf.GradientTape() as tape:
            metrics, total = self._d_losses(real, fake, swap, replica)
            scaled = _scaled(self.d_optimizer, total)
        grads = tape.gradient(scaled, self.discriminator.trainable_variables)
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, (metrics, grads)), tf.stop_gradient(fake)

    def _g_replica(self, z_salt):
        """G's loss against the current D on the same augmented fakes, and G's gradients."""
        replica = _replica_id()
        local_batch = self.config.training.batch_size // self.strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            fake = self.generator(self._latents(z_salt, replica, local_batch), training=True)
            g_loss, scaled = self._generator_loss(fake, replica)
        grads = tape.gradient(scaled, self.generator.trainable_variables)
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, ({"g_loss": g_loss}, grads))

    def _generator_loss(self, fake, replica):
        """G's loss from the current D on the augmented fakes (as D saw them), and its scaled form."""
        fake_in = self.augmenter(fake, self.seed(AUGMENT_FAKE_SALT, replica))
        g_loss = self._average(self.objective.generator_loss(self.discriminator(fake_in, training=True)))
        return g_loss, _scaled(self.g_optimizer, g_loss)

    def _both_replica(self, real, swap):
        """Simultaneous order: D's and G's gradients from one forward pass."""
        replica = _replica_id()
        z = self._latents(Z_SALT, replica, tf.shape(real)[0])
        with tf.GradientTape(persistent=True) as tape:
            fake = self.generator(z, training=True)
            metrics, d_total = self._d_losses(real, fake, swap, replica, keep_fake_scores=True)
            fake_scores = metrics.pop("fake_scores")
            metrics["g_loss"] = self._average(self.objective.generator_loss(fake_scores))
            d_scaled, g_scaled = _scaled(self.d_optimizer, d_total), _scaled(self.g_optimizer, metrics["g_loss"])
        d_grads = tape.gradient(d_scaled, self.discriminator.trainable_variables)
        g_grads = tape.gradient(g_scaled, self.generator.trainable_variables)
        del tape
        # One packed all-reduce per step (losses were scaled by 1 / global batch, so SUM is the mean).
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, (metrics, d_grads, g_grads))

    def _d_losses(self, real, fake, swap, replica, keep_fake_scores=False):
        """D's scores on the augmented reals and fakes, its loss plus terms, and the metrics to log."""
        real_in = self.augmenter(real, self.seed(AUGMENT_REAL_SALT, replica))
        fake_in = self.augmenter(fake, self.seed(AUGMENT_FAKE_SALT, replica))
        needs_gradients = any(term.needs_real_gradients for term in self.terms)
        if self.discriminator.scores_each_image_alone:
            # One call on reals and fakes: one larger batch runs faster on a CPU than two small
            # ones, and D scores each image alone, so the scores and gradients are those of two calls.
            count = tf.shape(real_in)[0]
            both = tf.concat([real_in, tf.cast(fake_in, real_in.dtype)], axis=0)
            with tf.GradientTape(watch_accessed_variables=False) as input_tape:
                input_tape.watch(both)
                scores = self.discriminator(both, training=True)
                real_scores, fake_scores = scores[:count], scores[count:]
            real_gradients = input_tape.gradient(real_scores, both)[:count] if needs_gradients else None
        else:
            with tf.GradientTape(watch_accessed_variables=False) as input_tape:
                input_tape.watch(real_in)
                real_scores = self.discriminator(real_in, training=True)
            fake_scores = self.discriminator(fake_in, training=True)
            real_gradients = input_tape.gradient(real_scores, real_in) if needs_gradients else None
        forward = terms.Forward(
            fake=fake, real=real, real_scores=real_scores, fake_scores=fake_scores,
            real_gradients=real_gradients,
            seed=lambda salt: self.seed(salt, replica),
        )
        d_loss = self._average(self.objective.discriminator_loss(real_scores, fake_scores, swap))
        metrics, total = {"d_loss": d_loss}, d_loss
        for term in self.terms:
            metrics[term.name] = self._average(term.per_example(forward, self.networks))
            total += term.weight * metrics[term.name]
        metrics["d_real"] = self._average(tf.stop_gradient(self.objective.display(real_scores)))
        metrics["d_fake"] = self._average(tf.stop_gradient(self.objective.display(fake_scores)))
        if self.augmenter.adaptive:
            metrics["real_sign"] = self._average(tf.sign(tf.stop_gradient(real_scores)))  # ADA's r_t
        if keep_fake_scores:
            metrics["fake_scores"] = fake_scores
        return metrics, total

    def _zpred_replica(self):
        """IllustrationGAN's z-prediction step: fresh z through G's FC layers and the predictor."""
        replica = _replica_id()
        local_batch = self.config.training.batch_size // self.strategy.num_replicas_in_sync
        z = self._latents(ZPRED_SALT, replica, local_batch)
        with tf.GradientTape() as tape:
            features = self.generator.fully_connected(z, training=True)
            loss = self._average(losses.z_prediction_loss(z, self.z_predictor(features, training=True)))
            scaled = _scaled(self.zpred_optimizer, loss)
        grads = tape.gradient(scaled, self.zpred_variables)
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, (loss, grads))

    # -- sampling ----------------------------------------------------------

    def fixed_latents(self, count: int) -> tf.Tensor:
        return self.generator.sample_latents(count, tf.constant(FIXED_Z_SEED, tf.int64))

    def sample_grid(self, z) -> np.ndarray:
        images = self.sampling_generator(z, training=False)
        return run_folder.image_grid(data.to_uint8(images))


def _replica_id():
    return tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)


def _false():
    return tf.constant(False)


def _zero():
    return tf.constant(0.0)
