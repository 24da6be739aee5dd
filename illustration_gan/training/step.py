"""The networks, their optimizers and the compiled training step of one run.

`GANTrainer` holds the parts chosen once from the config: the objective, D's
terms, the augmenter (ADA's p), the generator EMA and the update rule
(`regimes`). The rule decides when and in which order D and G update, composing
the trainer's primitives, each one all-reduce under any `tf.distribute` strategy:
`d_phase` (G(z) without gradient, D on the augmented reals and fakes, D's loss,
terms and gradients) and `apply_d` (with WGAN's clipping); `g_phase` (G(z) under a
tape, the current D on the same augmented fakes) and `apply_g` (with the EMA);
`both_phases` (`--update_order simultaneous`); and `d_and_g_one_forward`: on the
default strategy one tape spans both phases, so G's forward runs once as in the
PyTorch DCGAN tutorial (`netD(fake.detach())` for D, `netD(fake)` for G). Under a
strategy a tape cannot span the cross-replica update between the phases, and
TensorFlow refuses `merge_call` inside the control flow a conditional update
needs, so G's forward runs twice there.

Every source trains D first and G against the updated D (the PyTorch DCGAN
tutorial; tdrussell/IllustrationGAN train.py lines 107-127; jhayes14/GAN train.py
lines 111-117; Edouard99/GAN Trainings/*.py); IllustrationGAN's z-prediction step
(`z_prediction`) runs between them.
Every z comes from a stateless seed (`seeds`): a resumed run draws what an
uninterrupted one would.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from illustration_gan.config import Config
from illustration_gan.distribute import first_copy, replica_id
from illustration_gan.networks import build_networks
from illustration_gan.training import augment, objectives, regimes, seeds, terms
from illustration_gan.training.ema import GeneratorEMA
from illustration_gan.training.optimizers import make_optimizer
from illustration_gan.training.z_prediction import ZPrediction


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
        self.local_batch = t.batch_size // strategy.num_replicas_in_sync
        self.rate_factor = 1.0  # on the configured learning rates; halved by a collapse's roll-back
        keras.utils.set_random_seed(config.seed)  # the initial weights follow the run's seed
        with strategy.scope():
            self.networks = build_networks(config.model)
            self.generator, self.discriminator = self.networks.generator, self.networks.discriminator
            self.ema = (GeneratorEMA(build_networks(config.model).generator, self.generator, t.ema_kimg, t.batch_size)
                        if t.ema_kimg > 0 else None)
            self.g_optimizer, self.d_optimizer = (make_optimizer(t.optimizer, rate, t, config.precision)
                                                  for rate in (t.g_lr, t.d_lr))
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.z_prediction = (ZPrediction(self.generator, self.networks.z_predictor, t, config.precision)
                                 if self.networks.z_predictor is not None else None)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            # Wall-clock seconds of training in all parts of the run, so --max_minutes spans resumes.
            self.trained_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="trained_seconds")
            self.regime = regimes.make_rule(t)
            self.augmenter = augment.Augmenter(t.augment, t.ada_augment, t.ada_target, t.batch_size)
        # Constructed outside any strategy's scope with the default strategy: one replica, no merge_call.
        default_strategy = not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy()
        self.reuses_g_forward = default_strategy and self.regime.shares_g_forward
        parts = dict(generator=self.generator, discriminator=self.discriminator, g_optimizer=self.g_optimizer,
                     d_optimizer=self.d_optimizer, step=self.step, epoch=self.epoch,
                     **self.regime.checkpoint_items(), **self.augmenter.checkpoint_items(),
                     **(self.z_prediction.checkpoint_items() if self.z_prediction else {}),
                     **({"ema_generator": self.ema.generator} if self.ema else {}))
        # A run written before 2026-12-07 has no trained_seconds: it resumes with the minutes counted from 0.
        self.checkpoint_before_seconds = tf.train.Checkpoint(**parts)
        self.checkpoint = tf.train.Checkpoint(**parts, trained_seconds=self.trained_seconds)
        self.train_step = tf.function(self._train_step)
        self.train_steps = tf.function(self._train_steps)

    @property
    def sampling_generator(self):
        """The generator to look at and to save: the weight average when there is one."""
        return self.ema.generator if self.ema is not None else self.generator

    def seed(self, salt: int, replica=0):
        """The stateless seed of one random draw of this step (and replica)."""
        return seeds.of_step(self.config.seed, salt, replica, self.step)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics a step returns (summed over a call by `train_steps`)."""
        return ("d_loss", *(term.name for term in self.terms), "d_real", "d_fake", "g_loss", "d_updates", "g_updates",
                "labels_swapped", *(["real_sign"] if self.augmenter.adaptive else []), *self.regime.metric_names,
                *(["zpred_loss"] if self.z_prediction is not None else []))

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
        metrics = self.regime.step(self, real)
        if self.augmenter.adaptive:
            self.augmenter.adapt(metrics["real_sign"], self.step)
        self.step.assign_add(1)
        metrics.setdefault("labels_swapped", tf.constant(0.0))
        return metrics

    # -- the primitives an update rule composes ------------------------------

    def d_phase(self, real, swap=False, salt=seeds.Z, fake=None):
        """D's all-reduced metrics and gradients on the reals and fakes (G(z) from `salt` unless
        `fake` is given), and the fakes."""

        def replica_fn(real, swap, fake=None):
            replica = replica_id()
            if fake is None:
                fake = self.generator(self.generator.sample_latents(tf.shape(real)[0], self.seed(salt, replica)),
                                      training=True)
            with tf.GradientTape() as tape:
                metrics, total = self._d_losses(real, fake, swap, replica)
                scaled = _scaled(self.d_optimizer, total)
            grads = tape.gradient(scaled, self.discriminator.trainable_variables)
            context = tf.distribute.get_replica_context()
            return context.all_reduce(tf.distribute.ReduceOp.SUM, (metrics, grads)), tf.stop_gradient(fake)

        if fake is None:
            reduced, fake = self.strategy.run(replica_fn, args=(real, swap))
        else:
            reduced, _ = self.strategy.run(replica_fn, args=(real, swap, fake))
        metrics, grads = first_copy(self.strategy, reduced)
        return metrics, grads, fake

    def apply_d(self, grads):
        self.d_optimizer.apply(grads, self.discriminator.trainable_variables)
        clip = self.config.training.clip_weights
        if clip > 0:  # WGAN's weight clipping after each critic step
            for variable in self.discriminator.trainable_variables:
                variable.assign(tf.clip_by_value(variable, -clip, clip))
        return tf.constant(True)

    def g_phase(self, salt):
        """G's all-reduced loss and gradients against the current D."""

        def replica_fn():
            replica = replica_id()
            with tf.GradientTape() as tape:
                fake = self.generator(self.generator.sample_latents(self.local_batch, self.seed(salt, replica)),
                                      training=True)
                g_loss, scaled = self._g_loss(fake, replica)
            grads = tape.gradient(scaled, self.generator.trainable_variables)
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, (g_loss, grads))

        return first_copy(self.strategy, self.strategy.run(replica_fn))

    def apply_g(self, grads):
        self.g_optimizer.apply(grads, self.generator.trainable_variables)
        if self.ema is not None:
            self.ema.update(self.step)
        return tf.constant(True)

    def d_and_g_one_forward(self, real, update_d):
        """`update_d(fakes)` (the rule's D update), then G's update from the same G forward under
        one tape (`reuses_g_forward`); the metrics and the fakes."""
        z = self.generator.sample_latents(tf.shape(real)[0], self.seed(seeds.Z))
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            with tape.stop_recording():
                metrics = update_d(tf.stop_gradient(fake))
            g_loss, scaled = self._g_loss(fake, 0)
        self.apply_g(tape.gradient(scaled, self.generator.trainable_variables))
        metrics.update(g_loss=g_loss, g_updates=tf.constant(1.0), g_measured=tf.constant(1.0))
        return metrics, tf.stop_gradient(fake)

    def both_phases(self, real):
        """D's metrics and gradients and G's from one forward pass (simultaneous order), all-reduced."""

        def replica_fn(real):
            replica = replica_id()
            z = self.generator.sample_latents(tf.shape(real)[0], self.seed(seeds.Z, replica))
            with tf.GradientTape(persistent=True) as tape:
                fake = self.generator(z, training=True)
                metrics, d_total = self._d_losses(real, fake, False, replica, keep_fake_scores=True)
                fake_scores = metrics.pop("fake_scores")
                metrics["g_loss"] = self.average(self.objective.generator_loss(fake_scores))
                d_scaled, g_scaled = _scaled(self.d_optimizer, d_total), _scaled(self.g_optimizer, metrics["g_loss"])
            d_grads = tape.gradient(d_scaled, self.discriminator.trainable_variables)
            g_grads = tape.gradient(g_scaled, self.generator.trainable_variables)
            del tape
            context = tf.distribute.get_replica_context()  # one packed all-reduce per step
            return context.all_reduce(tf.distribute.ReduceOp.SUM, (metrics, d_grads, g_grads))

        return first_copy(self.strategy, self.strategy.run(replica_fn, args=(real,)))

    # -- what each replica computes ------------------------------------------

    def average(self, per_example):
        """A per-example loss as this replica's share of the global batch mean (so all-reduce SUM is the mean)."""
        batch = self.config.training.batch_size
        return tf.nn.compute_average_loss(tf.cast(per_example, tf.float32), global_batch_size=batch)

    def _g_loss(self, fake, replica):
        """G's loss from the current D on the augmented fakes (as D saw them), and its scaled form."""
        fake_in = self.augmenter(fake, self.seed(seeds.AUGMENT_FAKE, replica))
        g_loss = self.average(self.objective.generator_loss(self.discriminator(fake_in, training=True)))
        return g_loss, _scaled(self.g_optimizer, g_loss)

    def _d_losses(self, real, fake, swap, replica, keep_fake_scores=False):
        """D's scores on the augmented reals and fakes, its loss plus terms, and the metrics to log."""
        real_in = self.augmenter(real, self.seed(seeds.AUGMENT_REAL, replica))
        fake_in = self.augmenter(fake, self.seed(seeds.AUGMENT_FAKE, replica))
        gradients = any(term.needs_real_gradients for term in self.terms)
        features = any(term.needs_real_features for term in self.terms)
        real_scores, fake_scores, real_gradients, real_features = self.discriminator.score_pair(
            real_in, fake_in, gradients, features)
        forward = terms.Forward(fake=fake, real=real, real_scores=real_scores, fake_scores=fake_scores,
                                real_gradients=real_gradients, seed=lambda salt: self.seed(salt, replica),
                                real_seen=real_in, real_features=real_features)
        d_loss = self.average(self.objective.discriminator_loss(real_scores, fake_scores, swap))
        metrics, total = {"d_loss": d_loss}, d_loss
        for term in self.terms:
            metrics[term.name] = self.average(term.per_example(forward, self.networks))
            total += term.weight * metrics[term.name]
        metrics["d_real"] = self.average(tf.stop_gradient(self.objective.display(real_scores)))
        metrics["d_fake"] = self.average(tf.stop_gradient(self.objective.display(fake_scores)))
        if self.augmenter.adaptive:
            metrics["real_sign"] = self.average(tf.sign(tf.stop_gradient(real_scores)))  # ADA's r_t
        if keep_fake_scores:
            metrics["fake_scores"] = fake_scores
        return metrics, total


def _scaled(optimizer, loss):
    return optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
