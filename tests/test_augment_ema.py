import numpy as np
import pytest
import tensorflow as tf

from illustration_gan import training
from illustration_gan.training import augment
from illustration_gan import config as config_lib

SEED = tf.constant([4, 2], tf.int64)


@pytest.mark.parametrize("policy", [("color",), ("translation",), ("cutout",), augment.POLICIES])
def test_diff_augment_keeps_shape_and_is_differentiable(policy):
    x = tf.random.uniform([6, 16, 16, 3], -1, 1, seed=1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = augment.diff_augment(x, policy, SEED)
        total = tf.reduce_sum(y * tf.random.normal(y.shape, seed=2))
    assert y.shape == x.shape
    grad = tape.gradient(total, x)
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
    np.testing.assert_array_equal(y.numpy(), augment.diff_augment(x, policy, SEED).numpy())  # stateless


def test_translation_and_cutout_only_move_or_zero_pixels():
    x = tf.random.uniform([8, 16, 16, 3], 0.1, 1, seed=3)
    for fn in (augment.random_translation, augment.random_cutout):
        y = fn(x, SEED).numpy()
        assert y.min() >= 0 and y.max() <= 1  # values come from x or are 0 (mid-grey)
        assert (y == 0).any()
    cut = augment.random_cutout(tf.ones([20, 16, 16, 1]), SEED).numpy()
    zero_share = (cut == 0).mean(axis=(1, 2, 3))
    assert zero_share.max() <= 0.25 + 1e-6 and zero_share.mean() > 0.1  # an 8x8 square, less at borders


def _shifted(image, dy, dx):
    """image moved so that output[i, j] = image[i + dy, j + dx], zero where that is outside."""
    h, w = image.shape[:2]
    out = np.zeros_like(image)
    out[max(0, -dy):min(h, h - dy), max(0, -dx):min(w, w - dx)] = image[max(0, dy):min(h, h + dy), max(0, dx):min(w, w + dx)]
    return out


def test_translation_moves_each_image_by_its_own_shift_of_at_most_an_eighth():
    x = tf.random.uniform([16, 16, 16, 3], -1, 1, seed=7)
    y = augment.random_translation(x, SEED).numpy()
    shifts = []
    for image, moved in zip(x.numpy(), y):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if np.array_equal(_shifted(image, dy, dx), moved)]
        assert len(found) == 1, "each output is its input shifted by up to 2 of 16 pixels, zero-filled"
        shifts += found
    assert len(set(shifts)) > 4  # shifts differ between images
    assert {dy for dy, _ in shifts} >= {-2, 2} or {dx for _, dx in shifts} >= {-2, 2}  # reaches the full range


def test_color_changes_brightness_saturation_contrast_per_image():
    x = tf.random.uniform([8, 8, 8, 3], -0.5, 0.5, seed=5)
    y = augment.random_color(x, SEED).numpy()
    shifts = (y - x.numpy()).mean(axis=(1, 2, 3))
    assert np.abs(y).max() < 4 and np.std(shifts) > 0.05  # bounded, and different per image


def test_ema_moves_toward_live_weights_at_the_documented_rate():
    config = config_lib.resolve("dcgan", dict(image_size=32, g_width=4, d_width=4, z_dim=8, batch_size=16, ema_kimg=1.0))
    trainer = training.GANTrainer(config, tf.distribute.get_strategy())
    live = trainer.generator.trainable_variables[0]
    ema = trainer.ema.generator.trainable_variables[0]
    np.testing.assert_array_equal(ema.numpy(), live.numpy())  # starts as a copy
    old_ema = ema.numpy().copy()
    live.assign(live + 1.0)
    trainer.ema.update(999)  # after 1000 updates, 16,000 images: half-life = min(1000, 16000 * 0.05) = 800 images
    beta = 0.5 ** (16 / 800)
    np.testing.assert_allclose(float(trainer.ema.beta(16_000)), beta, rtol=1e-6)
    np.testing.assert_allclose(ema.numpy(), live.numpy() + (old_ema - live.numpy()) * beta, rtol=1e-5, atol=1e-6)
    # early: 160 images seen, the ramp-up shortens the half-life to 8 images
    np.testing.assert_allclose(float(trainer.ema.beta(160)), 0.5 ** (16 / 8), rtol=1e-6)
    assert trainer.sampling_generator is trainer.ema.generator


def test_adaptive_transforms_apply_to_each_image_with_probability_p():
    x = tf.random.uniform([400, 8, 8, 3], -0.5, 0.5, seed=7)
    changed = lambda p: (augment.diff_augment(x, (), SEED, ("color",), p).numpy() != x.numpy()).any(axis=(1, 2, 3))  # noqa: E731
    assert not changed(0.0).any() and changed(1.0).all()
    assert 0.4 < changed(0.5).mean() < 0.6
    always = augment.diff_augment(x, ("color",), SEED).numpy()
    np.testing.assert_allclose(augment.diff_augment(x, (), SEED, ("color",), 1.0).numpy(), always, atol=1e-6)
    with tf.GradientTape() as tape:  # still differentiable for G through the chosen images
        tape.watch(x)
        total = tf.reduce_sum(augment.diff_augment(x, ("translation",), SEED, ("cutout",), 0.5))
    assert float(tf.reduce_max(tf.abs(tape.gradient(total, x)))) == 1.0


def test_ada_controller_moves_p_by_images_over_its_speed_and_stays_in_unit_interval():
    step = 512 / (augment.ADA_KIMG * 1000)
    move = lambda p, r: float(augment.adjusted_probability(p, r, 0.6, 512))  # noqa: E731
    assert move(0.5, 0.9) == pytest.approx(0.5 + step)  # D too sure of the reals: augment more
    assert move(0.5, 0.2) == pytest.approx(0.5 - step)
    assert move(0.0, -1.0) == 0.0 and move(1.0, 1.0) == 1.0


def test_ada_raises_p_while_d_is_sure_of_the_reals_and_checkpoints_it(tmp_path):
    config = config_lib.resolve(
        "dcgan",
        dict(image_size=32, g_width=4, d_width=4, z_dim=8, batch_size=32, ada_augment="color,cutout", ada_target=0.6,
             framework=""),  # D's output with a bias (the tutorial's has none)
    )
    trainer = training.GANTrainer(config, tf.distribute.get_strategy())
    # A frozen D that calls every image real: r_t = 1 > 0.6 at each adjustment (every 256 / 32 = 8 steps).
    bias = trainer.discriminator.trainable_variables[-1]
    assert "bias" in bias.path
    bias.assign(bias + 100.0)
    trainer.d_optimizer.learning_rate.assign(0.0)
    iterator = iter(tf.data.Dataset.from_tensors(tf.zeros([32, 32, 32, 3])).repeat())
    for _ in range(20):
        metrics = trainer.train_step(iterator)
    assert float(metrics["real_sign"]) == 1.0
    assert float(trainer.augmenter.probability.numpy()) == pytest.approx(2 * 256 / (augment.ADA_KIMG * 1000))
    assert float(trainer.augmenter.real_sign_sum.numpy()) == 4.0  # steps 17-20, since the last adjustment
    saved = [name for name, _ in tf.train.list_variables(trainer.checkpoint.write(str(tmp_path / "ckpt")))]
    assert any(name.startswith("augment_p/") for name in saved)


def test_every_fixed_transform_trains_in_the_compiled_step():
    config = config_lib.resolve("fast", dict(image_size=32, g_width=4, d_width=4, z_dim=8, augment=",".join(augment.POLICIES)))
    trainer = training.GANTrainer(config, tf.distribute.get_strategy())
    batch = tf.random.uniform([8, 32, 32, 3], -1, 1, seed=6)
    # Decoded images leave the channel count unknown to the graph (data.decode_to_rgb), as here.
    signature = tf.TensorSpec([8, 32, 32, None], tf.float32)
    iterator = iter(tf.data.Dataset.from_generator(lambda: iter([batch] * 2), output_signature=signature))
    before = [w.numpy() for w in trainer.discriminator.trainable_variables]
    metrics = trainer.train_step(iterator)
    assert np.isfinite(float(metrics["d_loss"]))
    assert any((w.numpy() != b).any() for w, b in zip(trainer.discriminator.trainable_variables, before))


def test_adaptive_and_fixed_augmentation_must_not_overlap():
    with pytest.raises(config_lib.UserError, match="both --augment"):
        config_lib.resolve("fast", dict(ada_augment="translation,color"))
    with pytest.raises(config_lib.UserError, match="unknown augmentation"):
        config_lib.resolve("fast", dict(ada_augment="rotate"))
