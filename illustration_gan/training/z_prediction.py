"""IllustrationGAN's z-prediction step (tdrussell/IllustrationGAN model.py lines 170-172, train.py
lines 119-127): a predictor reads G's fully connected features and is trained, with those
layers, to recover z (MSE), by an Adam of its own on fresh z. In the source's loop the step runs
right after each D step: `net` flips to 'generator' when D's step is chosen, before the check
`if net == 'generator'` that runs it, so one iteration is D, Z, then G (`UpdateRule.d_then_g`)."""

from __future__ import annotations

import tensorflow as tf

from illustration_gan.distribute import first_copy, replica_id
from illustration_gan.training import losses, seeds
from illustration_gan.training.optimizers import make_optimizer


class ZPrediction:
    """The predictor's step with its optimizer; create it inside the strategy's scope."""

    def __init__(self, generator, z_predictor, training, precision: str):
        self.generator, self.z_predictor = generator, z_predictor
        self.variables = generator.fully_connected.trainable_variables + z_predictor.trainable_variables
        self.optimizer = make_optimizer("adam", training.g_lr, training, precision)
        self.optimizer.build(self.variables)

    def checkpoint_items(self) -> dict:
        return dict(z_predictor=self.z_predictor, zpred_optimizer=self.optimizer)

    def update(self, t) -> tf.Tensor:
        """One step on trainer `t`'s replicas; the all-reduced loss."""

        def replica_fn():
            z = self.generator.sample_latents(t.local_batch, t.seed(seeds.ZPRED, replica_id()))
            with tf.GradientTape() as tape:
                features = self.generator.fully_connected(z, training=True)
                loss = t.average(losses.z_prediction_loss(z, self.z_predictor(features, training=True)))
                scaled = self.optimizer.scale_loss(loss) if hasattr(self.optimizer, "scale_loss") else loss
            grads = tape.gradient(scaled, self.variables)
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, (loss, grads))

        loss, grads = first_copy(t.strategy, t.strategy.run(replica_fn))
        self.optimizer.apply(grads, self.variables)
        return loss
