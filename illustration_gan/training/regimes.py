"""When the discriminator and the generator update: the source projects' rules, in-graph.

Each rule follows its author's code, which produced the published results:

- none: one D update, then one G update, per batch.
- margin (jhayes14/GAN train.py at 46fd50a, lines 99-141): D trains once and G trains once on
  the batch; then, if |L_G - L_D| > 0.10, the network with the larger loss trains
  again on the same batch (D on the same fakes, G on the same z) while the gap is
  above the margin, stopping early when its loss falls below the other's. L_D is
  Keras' binary cross-entropy over the joint batch of reals and fakes (half of our
  summed real + fake loss), and each loss is the one its `train_on_batch` returned:
  computed before that update. The source's loop has no cap; here `margin_repeats`
  (10) caps it and stats.jsonl reports the repeats.
- monitor (Edouard99/GAN Trainings/training_monitoring.py, lines 52-59): D's update
  is applied only when errD > 0.8 x errG, where errG is the G loss of the previous
  iteration (computed after that iteration's D update); always on the first step.
  G updates every iteration.
- boost (Edouard99/GAN Trainings/training_boosting.py at 06d4eb2, lines 63-166):
  each iteration draws k ~ U(0, 1). 0.0001 < k < 0.001 starts a D boost: for 100
  iterations (this one included) only D trains, with normal labels. Outside a boost,
  k < 0.93 is a normal D update and k >= 0.93 one with real and fake labels swapped
  (the "noisy labels"). k < 0.0001 starts a G boost: for 100 iterations only G
  trains. Outside a boost G trains when k >= 0.001. Each update draws fresh z. On
  the iteration that ends a boost, the other branches run too, so D (or G) can
  update twice then; this follows the code. (An earlier commit, 057c9ed, ran the
  100 D updates inside one iteration on the same batch; the README and the code at
  06d4eb2, which predates the published images, describe iterations.)
- n_critic (Edouard99/GAN Trainings/training_wgan.py, line 36): G updates only on
  iterations 0, n, 2n, ...

The rules use tensors only, so the step is traced once. Each rule is an object (`make_rule`)
that composes the trainer's phases in the order its source's code runs them.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from illustration_gan.training import seeds

BOOST_UPDATES = 100
D_BOOST_BELOW, G_BOOST_BELOW, SWAP_FROM = 1e-3, 1e-4, 0.93


class Plan(NamedTuple):
    """What a step does, decided before it from its random draw k and the boost state."""

    d_updates: tf.Tensor  # int32, 0-2: D updates; a second one comes first, with normal labels
    swap_labels: tf.Tensor  # bool: the step's own D update trains with real and fake labels exchanged
    g_updates: tf.Tensor  # int32, 0-2: G updates
    d_boost: tf.Tensor  # int32: D-boost iterations done after this step (0 = none under way)
    g_boost: tf.Tensor  # int32: likewise for G


def plan(balance: str, k, step, d_boost=0, g_boost=0, n_critic: int = 1) -> Plan:
    """The step's plan (the module docstring gives the rules); `d_boost` and `g_boost` count the
    iterations of a boost under way, as training_boosting.py's ndis and ngen."""
    g_turn = tf.equal(tf.math.floormod(step, n_critic), 0) if n_critic > 1 else tf.constant(True)
    if balance != "boost":
        zero = tf.constant(0, tf.int32)
        return Plan(tf.constant(1, tf.int32), tf.constant(False), tf.where(g_turn, 1, 0), zero, zero)
    d_boost, g_boost = tf.cast(d_boost, tf.int32), tf.cast(g_boost, tf.int32)
    in_g = g_boost > 0
    boost_d = ((k > G_BOOST_BELOW) & (k < D_BOOST_BELOW) | (d_boost > 0)) & ~in_g
    d_boost = tf.where(boost_d, (d_boost + 1) % BOOST_UPDATES, d_boost)
    own_d = (d_boost == 0) & ~in_g  # the normal or label-swapped update
    boost_g = ((k < G_BOOST_BELOW) | in_g) & (d_boost == 0)
    g_boost = tf.where(boost_g, (g_boost + 1) % BOOST_UPDATES, g_boost)
    own_g = (k >= D_BOOST_BELOW) & (d_boost == 0) & (g_boost == 0)
    count = lambda *flags: tf.add_n([tf.cast(f, tf.int32) for f in flags])  # noqa: E731
    return Plan(count(boost_d, own_d), own_d & (k >= SWAP_FROM), count(boost_g, own_g), d_boost, g_boost)


def monitor_allows_d(d_loss, previous_g_loss, step, ratio: float):
    """The monitored rule: D's update only when errD > ratio x the previous errG (always at step 0)."""
    return tf.logical_or(tf.equal(step, 0), d_loss > ratio * previous_g_loss)


def margin_side(d_loss, g_loss, margin: float):
    """Which network the margin rule trains again: 1 for D (G is ahead: L_G < L_D), -1 for G, 0 for neither.
    `d_loss` is the source's L_D (BCE averaged over the joint batch)."""
    gap = tf.abs(d_loss - g_loss) > margin
    return tf.where(gap, tf.where(g_loss < d_loss, 1, -1), 0)


def margin_loop(d_loss, g_loss, margin: float, cap: int, train_d_again, train_g_again):
    """jhayes14/GAN train.py lines 123-141, in-graph: after the batch's first D and G updates with
    losses `d_loss` and `g_loss`, the network behind trains again (`train_d_again()` or
    `train_g_again()` returns the loss of that repeat, computed before its update) while the gap is
    above `margin`, until its loss falls below the other's, at most `cap` times. Returns the repeats
    (int32) and the side that repeated (1 = D, -1 = G, 0 = none)."""
    side = margin_side(d_loss, g_loss, margin)

    def again(i, d_l, g_l):
        d_l, g_l = tf.cond(side > 0, lambda: (train_d_again(), g_l), lambda: (d_l, train_g_again()))
        return i + 1, d_l, g_l

    def going_on(i, d_l, g_l):
        behind = tf.where(side > 0, d_l >= g_l, g_l >= d_l)
        return (i < cap) & (side != 0) & (tf.abs(d_l - g_l) > margin) & behind

    start = (tf.constant(0), tf.cast(d_loss, tf.float32), tf.cast(g_loss, tf.float32))
    repeats, _, _ = tf.while_loop(going_on, again, start)
    return repeats, side


class MonitorGate:
    """The monitored rule's condition on D's update, with its memory of the previous G loss."""

    def __init__(self, ratio: float):
        self.ratio = ratio
        self.previous_g_loss = tf.Variable(0.0, trainable=False, name="previous_g_loss")

    def allows(self, d_loss, step):
        return monitor_allows_d(d_loss, self.previous_g_loss, step, self.ratio)

    def record(self, g_loss):
        self.previous_g_loss.assign(tf.cast(g_loss, tf.float32))


class UpdateRule:
    """Every source's order, the base of the others: D's update, then G's against the updated D
    (n_critic: G on every n-th step only), composed from the trainer's primitives (`d_phase`,
    `apply_d`, `g_phase`, `apply_g`, `d_and_g_one_forward`). With --balance monitor a gate
    decides whether D's update is applied. Create it inside the strategy's scope (its state is
    variables); `checkpoint_items` makes a resumed run decide as an uninterrupted one."""

    metric_names: tuple[str, ...] = ("g_measured",)  # G updates whose loss the step reports

    def __init__(self, training):
        self.training = training
        self.gate = MonitorGate(training.monitor_ratio) if training.balance == "monitor" else None
        self.g_salt = seeds.FRESH_G_Z if training.fresh_g_z else seeds.Z

    @property
    def g_may_skip(self) -> bool:
        """Whether a step can leave G out (then G's phase is built under a condition)."""
        return self.training.n_critic > 1

    @property
    def shares_g_forward(self) -> bool:
        """G updates every step from D's z: one G forward can serve both phases (one device)."""
        return not self.g_may_skip and not self.training.fresh_g_z

    def checkpoint_items(self) -> dict:
        return dict(previous_g_loss=self.gate.previous_g_loss) if self.gate else {}

    def step(self, t, real) -> dict:
        metrics, _ = self.d_then_g(t, real)
        self.record(metrics)
        return metrics

    # -- the pieces the rules compose

    def d_then_g(self, t, real):
        """D's update, then G's (or both with one G forward); the metrics and D's fakes."""
        if t.reuses_g_forward:
            return t.d_and_g_one_forward(real, lambda fake: self.predict_z(t, self.update_d(t, real, fake=fake)[0]))
        metrics, fake = self.update_d(t, real)
        self.predict_z(t, metrics)
        g = self.update_g(t, self.g_salt, when=self.g_turn(t.step) if self.g_may_skip else None)
        metrics.update(g_loss=g["g_loss"], g_updates=g["g_updates"], g_measured=g["g_updates"])
        return metrics, fake

    def update_d(self, t, real, swap=False, salt=seeds.Z, fake=None, when=None):
        """A D phase and, if the gate (and `when`) allow, D's update; its metrics and fakes."""
        metrics, grads, fake = t.d_phase(real, swap, salt, fake)
        allowed = self.allows_d(metrics["d_loss"], t.step)
        allowed = allowed if when is None else when & allowed
        metrics["d_updates"] = tf.cast(tf.cond(allowed, lambda: t.apply_d(grads), _false), tf.float32)
        return metrics, fake

    def update_g(self, t, salt, when=None) -> dict:
        """A G phase against the current D and G's update (only `when` it holds, if given)."""

        def update():
            g_loss, grads = t.g_phase(salt)
            t.apply_g(grads)
            return {"g_loss": g_loss, "g_updates": tf.constant(1.0)}

        if when is None:
            return update()
        return tf.cond(when, update, lambda: {"g_loss": tf.constant(0.0), "g_updates": tf.constant(0.0)})

    def allows_d(self, d_loss, step):
        """Whether D's update is applied: always, or as the monitored rule's gate decides."""
        return self.gate.allows(d_loss, step) if self.gate else tf.constant(True)

    def predict_z(self, t, metrics) -> dict:
        """IllustrationGAN's z-prediction step, right after D's (`z_prediction`), where the run has one."""
        if t.z_prediction is not None:
            metrics["zpred_loss"] = t.z_prediction.update(t)
        return metrics

    def g_turn(self, step):
        """n_critic (training_wgan.py line 36): G on iterations 0, n, 2n, ..."""
        n = self.training.n_critic
        return tf.equal(tf.math.floormod(step, n), 0) if n > 1 else tf.constant(True)

    def record(self, metrics):
        if self.gate:
            self.gate.record(metrics["g_loss"])


class Simultaneous(UpdateRule):
    """Both gradients from one forward pass, applied together (G's sees D before this step's update)."""

    metric_names = ()

    @property
    def shares_g_forward(self) -> bool:
        return False

    def step(self, t, real):
        metrics, d_grads, g_grads = t.both_phases(real)
        allowed = self.allows_d(metrics["d_loss"], t.step)
        metrics["d_updates"] = tf.cast(tf.cond(allowed, lambda: t.apply_d(d_grads), _false), tf.float32)
        metrics["g_updates"] = tf.cast(tf.cond(self.g_turn(t.step), lambda: t.apply_g(g_grads), _false), tf.float32)
        self.predict_z(t, metrics)
        self.record(metrics)
        return metrics


class Margin(UpdateRule):
    """jhayes14/GAN's margin rule (`margin_loop`): the network behind trains again on the same
    batch, D on the same fakes and G on the same z."""

    metric_names = ("g_measured", "margin_repeats")

    def step(self, t, real):
        metrics, fake = self.d_then_g(t, real)
        repeats, side = margin_loop(
            metrics["d_loss"] / 2,  # Keras' BCE over the joint batch of 2n images, as the source compares
            metrics["g_loss"], self.training.margin, self.training.margin_repeats,
            train_d_again=lambda: self.update_d(t, real, fake=fake)[0]["d_loss"] / 2,
            train_g_again=lambda: self.update_g(t, self.g_salt)["g_loss"],
        )
        repeats = tf.cast(repeats, tf.float32)
        metrics["d_updates"] += tf.where(side > 0, repeats, 0.0)
        metrics["g_updates"] += tf.where(side < 0, repeats, 0.0)
        metrics["margin_repeats"] = repeats
        return metrics


class Boost(UpdateRule):
    """The Pokemon GAN's boosted training (`plan`), its counters checkpointed. Every update draws
    fresh z; a boost's last iteration can update D (or G) twice, the extra update first."""

    def __init__(self, training):
        super().__init__(training)
        self.g_salt = seeds.FRESH_G_Z
        self.d_boost = tf.Variable(0, dtype=tf.int32, trainable=False, name="d_boost")
        self.g_boost = tf.Variable(0, dtype=tf.int32, trainable=False, name="g_boost")

    g_may_skip = True
    shares_g_forward = False

    def checkpoint_items(self) -> dict:
        return dict(d_boost=self.d_boost, g_boost=self.g_boost)

    def step(self, t, real):
        k = tf.random.stateless_uniform([], t.seed(seeds.REGIME))
        decided = plan("boost", k, t.step, self.d_boost, self.g_boost)
        self.d_boost.assign(decided.d_boost)
        self.g_boost.assign(decided.g_boost)
        extra_d = tf.cond(decided.d_updates > 1,
                          lambda: self.update_d(t, real, salt=seeds.BOOST_D)[0]["d_updates"], _zero)
        metrics, _ = self.update_d(t, real, decided.swap_labels, when=decided.d_updates > 0)
        self.predict_z(t, metrics)  # no source boosts with a z-predictor: after the step's own D update
        metrics["d_updates"] += extra_d
        first = self.update_g(t, self.g_salt, when=decided.g_updates > 0)
        second = tf.cond(decided.g_updates > 1, lambda: self.update_g(t, seeds.SECOND_G)["g_updates"], _zero)
        metrics.update(g_loss=first["g_loss"], g_updates=first["g_updates"] + second, g_measured=first["g_updates"],
                       labels_swapped=tf.cast(decided.swap_labels, tf.float32))
        return metrics


def make_rule(training) -> UpdateRule:
    """The run's rule, chosen once from --update_order and --balance."""
    if training.update_order == "simultaneous":
        return Simultaneous(training)
    return {"margin": Margin, "boost": Boost}.get(training.balance, UpdateRule)(training)


def _false():
    return tf.constant(False)


def _zero():
    return tf.constant(0.0)
