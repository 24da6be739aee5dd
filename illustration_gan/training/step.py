"""The networks, their optimizers and the compiled training step of one run.

`GANTrainer` composes the parts chosen once from the config: the objective
(`objectives`) and regularising terms (`terms`), the augmenter that owns ADA's p (`augment`),
the update rule with its state (`regimes`) and the generator EMA (`ema`).

One `tf.function` step does, under any `tf.distribute` strategy:
  1. in each replica: sample z, run G once and D on the real and the fake batch,
     and take both networks' gradients from that one forward pass (simultaneous
     gradients: the G gradient sees D before this step's D update);
  2. across replicas: sum losses and gradients in one all-reduce, let the regime
     decide from the batch's losses which networks update, and apply the updates
     under `tf.cond` (in cross-replica context, where that is allowed).
The z of every step comes from a stateless seed (run seed, replica, step), so a
resumed run samples exactly the z an uninterrupted run would.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from illustration_gan import data, run_folder
from illustration_gan.config import Config
from illustration_gan.networks import build_networks
from illustration_gan.training import augment, objectives, regimes, terms
from illustration_gan.training.ema import GeneratorEMA

FIXED_Z_SEED = (20160101, 7)  # the seed of the per-epoch sample grid's z
# Salts of the stateless seeds, one per random draw of a step.
Z_SALT, GP_SALT, REGIME_SALT, NOISE_SALT, AUGMENT_REAL_SALT, AUGMENT_FAKE_SALT = 1, 2, 3, 4, 5, 6


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


def _scaled(optimizer, loss):
    return optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss


class GANTrainer:
    """Networks, optimizers, counters, the compiled `train_step` and the checkpoint of one run."""

    def __init__(self, config: Config, strategy: tf.distribute.Strategy):
        self.config, self.strategy = config, strategy
        t = config.training
        keras.mixed_precision.set_global_policy(config.precision)
        self.objective = objectives.make_objective(t)
        self.terms = terms.make_terms(config)
        with strategy.scope():
            self.networks = build_networks(config.model)
            self.ema = None
            if t.ema_kimg > 0:
                ema_copy = build_networks(config.model).generator
                self.ema = GeneratorEMA(ema_copy, self.generator, t.ema_kimg, t.batch_size)
            self.g_optimizer = make_optimizer(t.optimizer, t.g_lr, t.beta1, t.beta2, config.precision)
            self.d_optimizer = make_optimizer(t.optimizer, t.d_lr, t.beta1, t.beta2, config.precision)
            self.g_optimizer.build(self.generator_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.regime = regimes.Regime(t)
            self.augmenter = augment.Augmenter(t.augment, t.ada_augment, t.ada_target, t.batch_size)
        parts = dict(
            generator=self.generator, discriminator=self.discriminator, g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer, step=self.step, epoch=self.epoch,
            **self.regime.checkpoint_items(), **self.augmenter.checkpoint_items(),
        )
        if self.z_predictor is not None:
            parts["z_predictor"] = self.z_predictor
        if self.ema is not None:
            parts["ema_generator"] = self.ema.generator
        self.checkpoint = tf.train.Checkpoint(**parts)
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
        return self.ema.generator if self.ema is not None else self.generator

    @property
    def generator_variables(self):
        """G's weights plus the z-predictor's: both minimise the generator-side loss."""
        extra = self.z_predictor.trainable_variables if self.z_predictor is not None else []
        return self.generator.trainable_variables + extra

    def seed(self, salt: int, replica=0):
        """The stateless seed of one random draw of this step (and replica)."""
        return tf.stack([tf.cast(self.config.seed * 1_000_003 + salt * 1009 + replica, tf.int64), self.step])

    # -- the step ----------------------------------------------------------

    def _train_step(self, iterator):
        k = tf.random.stateless_uniform([], self.seed(REGIME_SALT))
        swap = self.regime.swap_labels(k, tf.random.stateless_uniform([], self.seed(NOISE_SALT)))
        reduced = self.strategy.run(self._replica_step, args=(next(iterator), swap))
        # Every replica now holds the same sums; continue with this worker's first copy.
        metrics, d_grads, g_grads = tf.nest.map_structure(
            lambda value: self.strategy.experimental_local_results(value)[0], reduced
        )
        decision = self.regime.decide(metrics["d_loss"], metrics["g_loss"], self.step, k)
        metrics["d_updates"] = tf.cast(tf.cond(decision.update_d, lambda: self._apply_d(d_grads), _false), tf.float32)
        metrics["g_updates"] = tf.cast(tf.cond(decision.update_g, lambda: self._apply_g(g_grads), _false), tf.float32)
        if self.augmenter.adaptive:
            self.augmenter.adapt(metrics["real_sign"], self.step)
        self.step.assign_add(1)
        metrics["labels_swapped"] = tf.cast(swap, tf.float32)
        return metrics

    def _replica_step(self, real, swap):
        context = tf.distribute.get_replica_context()
        replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
        metrics, d_grads, g_grads = self._losses_and_gradients(real, swap, replica)
        # One packed all-reduce per step (losses were scaled by 1 / global batch, so SUM is the mean).
        return context.all_reduce(tf.distribute.ReduceOp.SUM, (metrics, d_grads, g_grads))

    def _losses_and_gradients(self, real, swap, replica):
        """One replica's forward pass, losses and gradients (no cross-replica communication)."""
        batch = self.config.training.batch_size

        def average(per_example):
            return tf.nn.compute_average_loss(tf.cast(per_example, tf.float32), global_batch_size=batch)

        z = self.generator.sample_latents(tf.shape(real)[0], self.seed(Z_SALT, replica))
        with tf.GradientTape(persistent=True) as tape:
            fake, features = self.generator(z, training=True, return_features=True)
            forward = self._discriminate(z, real, fake, features, replica)
            d_loss = average(self.objective.discriminator_loss(forward.real_scores, forward.fake_scores, swap))
            g_loss = average(self.objective.generator_loss(forward.fake_scores))
            metrics = {"d_loss": d_loss, "g_loss": g_loss}
            totals = {"d": d_loss, "g": g_loss}
            for term in self.terms:
                metrics[term.name] = average(term.per_example(forward, self.networks))
                totals[term.side] += term.weight * metrics[term.name]
            d_scaled, g_scaled = _scaled(self.d_optimizer, totals["d"]), _scaled(self.g_optimizer, totals["g"])
        d_grads = tape.gradient(d_scaled, self.discriminator.trainable_variables)
        g_grads = tape.gradient(g_scaled, self.generator_variables)
        del tape
        metrics["d_real"] = average(self.objective.display(forward.real_scores))
        metrics["d_fake"] = average(self.objective.display(forward.fake_scores))
        if self.augmenter.adaptive:
            metrics["real_sign"] = average(tf.sign(forward.real_scores))  # ADA's r_t over the global batch
        return metrics, d_grads, g_grads

    def _discriminate(self, z, real, fake, features, replica) -> terms.Forward:
        """D's scores on the (augmented) reals and fakes, and the reals' input gradients if a term needs them."""
        real_in = self.augmenter(real, self.seed(AUGMENT_REAL_SALT, replica))
        fake_in = self.augmenter(fake, self.seed(AUGMENT_FAKE_SALT, replica))
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(real_in)
            real_scores = self.discriminator(real_in, training=True)
        fake_scores = self.discriminator(fake_in, training=True)
        needs_gradients = any(term.needs_real_gradients for term in self.terms)
        return terms.Forward(
            z=z, fake=fake, features=features, real=real, real_scores=real_scores, fake_scores=fake_scores,
            real_gradients=tape.gradient(real_scores, real_in) if needs_gradients else None,
            seed=lambda salt: self.seed(salt, replica),
        )

    def _apply_d(self, grads):
        self.d_optimizer.apply(grads, self.discriminator.trainable_variables)
        clip = self.config.training.clip_weights
        if clip > 0:  # WGAN's weight clipping after each critic step
            for variable in self.discriminator.trainable_variables:
                variable.assign(tf.clip_by_value(variable, -clip, clip))
        return tf.constant(True)

    def _apply_g(self, grads):
        self.g_optimizer.apply(grads, self.generator_variables)
        if self.ema is not None:
            self.ema.update(self.step)
        return tf.constant(True)

    # -- sampling ----------------------------------------------------------

    def fixed_latents(self, count: int) -> tf.Tensor:
        return self.generator.sample_latents(count, tf.constant(FIXED_Z_SEED, tf.int64))

    def sample_grid(self, z) -> np.ndarray:
        images = self.sampling_generator(z, training=False)
        return run_folder.image_grid(data.to_uint8(images))


def _false():
    return tf.constant(False)
