"""The reproduction presets' layers and optimisers as their sources' libraries ran them (issue 52;
docs/reproduction.md gives each source's file and line)."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from illustration_gan import UserError
from illustration_gan import config as config_lib
from illustration_gan.config import PRESETS
from illustration_gan.networks import MinibatchDiscrimination, build_networks
from illustration_gan.networks.fused_batch_norm import BatchNormalization
from illustration_gan.training.optimizers import make_optimizer


def _model(preset, **changes):
    return dataclasses.replace(PRESETS[preset][0], **changes)


def _batch_norms(model):
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("framework, top, scale, epsilon", [("prettytensor", 256, False, 1e-3), ("", 512, True, 1e-5)])
def test_illustration_takes_prettytensor_batch_norm_and_width_and_older_runs_rebuild_as_before(
        framework, top, scale, epsilon):
    nets = build_networks(_model("illustration", image_size=32, fc_units=16, framework=framework))
    _, features = nets.generator(tf.zeros((2, 100)), return_features=True)
    assert features.shape == (2, 4 * 4 * top)  # model.py line 82: 4x4x256 at 32 px
    norms = _batch_norms(nets.generator) + _batch_norms(nets.discriminator)
    assert len(norms) == 3 + 2
    for layer in norms:
        assert layer.scale is scale and layer.epsilon == pytest.approx(epsilon) and layer.momentum == 0.9
        assert (layer.gamma is not None) is scale
    assert nets.discriminator.minibatch.count_self is (framework == "prettytensor")


def test_minibatch_discrimination_counts_self_as_illustrationgan_does():
    features = np.tile(np.arange(6, dtype=np.float32), (2, 1))  # two identical samples
    without = MinibatchDiscrimination(3, 2)
    with_self = MinibatchDiscrimination(3, 2, count_self=True)
    np.testing.assert_allclose(without(features).numpy(), 1.0, rtol=1e-6)  # the other sample only
    np.testing.assert_allclose(with_self(features).numpy(), 2.0, rtol=1e-6)  # custom_ops.py line 126
    assert MinibatchDiscrimination.from_config(with_self.get_config()).count_self


def test_prettytensor_batch_norm_without_scale_takes_the_fused_kernel_in_bfloat16():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        ours = BatchNormalization(momentum=0.9, epsilon=1e-3, scale=False)
        stock = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, scale=False)
        x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, size=(4, 5, 5, 6)), tf.float32)
        got, want = (tf.cast(layer(tf.cast(x, "bfloat16"), training=True), tf.float32).numpy() for layer in (ours, stock))
        np.testing.assert_allclose(got, want, atol=2e-2 * np.abs(want).max())
        np.testing.assert_allclose(ours.moving_mean.numpy(), stock.moving_mean.numpy(), rtol=2e-2, atol=1e-2)
        graph = tf.function(lambda t: ours(t, training=True)).get_concrete_function(
            tf.TensorSpec(x.shape, "bfloat16")).graph
        assert any(op.type == "FusedBatchNormV3" for op in graph.get_operations())
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_pytorch_framework_drops_the_output_biases_of_the_tutorial():
    nets = build_networks(_model("dcgan", image_size=32))
    assert nets.generator.upsample.layers[-2].bias is None  # ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False)
    assert nets.discriminator.score.bias is None  # Conv2d(ndf * 8, 1, 4, 1, 0, bias=False)
    before = build_networks(_model("dcgan", image_size=32, framework=""))
    assert before.generator.upsample.layers[-2].bias is not None and before.discriminator.score.bias is not None


def test_pokemon_wgan_critic_head_keeps_pytorch_linear_init_inside_the_clip():
    nets = build_networks(_model("pokemon-wgan"))
    head = nets.discriminator.score
    bound = (4 * 4 * 1024) ** -0.5  # nn.Linear(ndf*8*4*4, 1): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) = 1/128
    for weights in (head.kernel.numpy(), head.bias.numpy()):
        assert np.abs(weights).max() <= bound
    assert np.abs(head.kernel.numpy()).max() > 0.9 * bound and head.bias.numpy()[0] != 0
    assert np.abs(head.kernel.numpy()).max() < PRESETS["pokemon-wgan"][1].clip_weights  # nothing clipped at step 1
    # The head as built before: N(0, 0.02), most of it beyond the clip.
    old = build_networks(_model("pokemon-wgan", framework="")).discriminator.score.kernel.numpy()
    assert np.mean(np.abs(old) > 0.01) > 0.5


def test_keras1_batch_norm_normalises_each_width_column_as_the_channels_first_source_did():
    nets = build_networks(_model("keras-margin", image_size=32, g_width=8, d_width=8, max_width=16))
    g = nets.generator
    dense_norm, *conv_norms = [layer for layer in g.project.layers + g.upsample.layers
                               if isinstance(layer, keras.layers.BatchNormalization)]
    assert dense_norm.gamma.shape == (4 * 4 * 16,)
    assert [layer.gamma.shape for layer in conv_norms] == [(8,), (16,)]  # one per column of the 8- and 16-wide maps
    for layer in (dense_norm, *conv_norms):
        assert layer.epsilon == pytest.approx(1e-6) and layer.momentum == 0.9  # Keras 1.0.5's defaults
    x = tf.constant(np.random.default_rng(1).normal(size=(3, 8, 8, 16)) * np.arange(1, 9)[None, None, :, None],
                    tf.float32)
    y = conv_norms[0](x, training=True).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 1, 3)), 0.0, atol=1e-5)  # each column over batch, rows, channels
    np.testing.assert_allclose(y.std(axis=(0, 1, 3)), 1.0, atol=1e-3)
    assert np.abs(y.mean(axis=(0, 1, 2))).max() > 1e-3  # channels are not normalised one by one
    old = build_networks(_model("keras-margin", image_size=32, g_width=8, d_width=8, max_width=16, framework=""))
    assert [layer.gamma.shape for layer in old.generator.upsample.layers if hasattr(layer, "gamma")] == [(16,), (8,)]


def test_pokemon_at_256_px_builds_the_sources_gan256_widths():
    config = config_lib.resolve("pokemon", {"image_size": 256})
    m = config.model
    assert (m.g_width, m.d_width, m.minibatch_kernels) == (32, 32, 4)  # gan256.py lines 72-96, 123-145, 126
    assert config_lib.resolve("pokemon", {"image_size": 256, "g_width": 64}).model.g_width == 64  # given wins
    assert config_lib.resolve("pokemon", {}).model.g_width == 128
    assert config_lib.resolve("pokemon-wgan", {"image_size": 256}).model.minibatch_kernels == 4
    # Without the minibatch layer (its T alone has 3*32*32 x 4*32*32*16 = 201M weights at 256 px).
    nets = build_networks(dataclasses.replace(m, minibatch_kernels=0))
    g_widths = [layer.filters for layer in nets.generator.upsample.layers if hasattr(layer, "filters")]
    assert nets.generator.project.layers[1].target_shape == (4, 4, 1024)
    assert g_widths == [512, 256, 128, 64, 32, 3]
    d_widths = [layer.filters for layer in nets.discriminator.body.layers if hasattr(layer, "filters")]
    assert d_widths == [32, 64, 128, 256, 512, 1024]


def test_pytorch_rmsprop_takes_one_step_as_torch_computes_it():
    training = dataclasses.replace(PRESETS["pokemon-wgan"][1])
    assert training.optimizer == "rmsprop_pytorch"
    grad = np.array([1e-4, -3e-6, 0.2], np.float32)
    start = np.array([0.005, -0.002, 0.001], np.float32)
    results = {}
    for kind in ("rmsprop_pytorch", "rmsprop"):
        variable = keras.Variable(start)
        optimizer = make_optimizer(kind, training.d_lr, training, "float32")
        for _ in range(2):
            optimizer.apply([tf.constant(grad)], [variable])
        results[kind] = variable.numpy()
    # torch.optim.RMSprop: v = alpha v + (1 - alpha) g^2; p -= lr g / (sqrt(v) + eps), twice.
    alpha, eps, lr = training.rmsprop_rho, training.epsilon, training.d_lr
    v, p = np.zeros(3, np.float64), start.astype(np.float64)
    for _ in range(2):
        v = alpha * v + (1 - alpha) * grad.astype(np.float64) ** 2
        p = p - lr * grad / (np.sqrt(v) + eps)
    np.testing.assert_allclose(results["rmsprop_pytorch"], p, rtol=1e-5, atol=1e-9)
    # Keras' form (eps under the root) moves the small gradients' weights less.
    moved = lambda r: np.abs(r - start)  # noqa: E731
    assert moved(results["rmsprop"])[1] < 0.5 * moved(results["rmsprop_pytorch"])[1]


def test_reproduction_presets_name_their_framework_and_a_mismatch_is_refused():
    frameworks = {name: config_lib.resolve(name, {}).model.framework for name in PRESETS}
    assert frameworks == {"illustration": "prettytensor", "dcgan": "pytorch", "wgan": "pytorch", "pokemon": "pytorch",
                          "pokemon-wgan": "pytorch", "keras-margin": "keras1", "fast": "", "dense": ""}
    assert config_lib.resolve("illustration", {}).training.epsilon == 1e-8  # TF1's AdamOptimizer
    with pytest.raises(UserError, match="does not fit architecture"):
        config_lib.resolve("dcgan", {"framework": "keras1"})
    with pytest.raises(UserError, match="optimizer must be one of"):
        config_lib.resolve("dcgan", {"optimizer": "sgd"})


def test_a_run_recorded_before_the_framework_field_rebuilds_as_it_trained():
    recorded = json.loads(config_lib.dumps(config_lib.resolve("illustration", {"image_size": 32})))
    del recorded["model"]["framework"]
    config = config_lib.Config.from_json(recorded)
    assert config.model.framework == ""
    _, features = build_networks(dataclasses.replace(config.model, fc_units=16)).generator(
        tf.zeros((1, 100)), return_features=True)
    assert features.shape == (1, 4 * 4 * 512)


def test_presets_train_as_long_as_their_sources_unless_told():
    assert [config_lib.resolve(name, {}).epochs for name in ("dcgan", "pokemon", "pokemon-wgan")] == [100, 150, 150]
    assert config_lib.resolve("pokemon", {"epochs": 3}).epochs == 3
    assert config_lib.resolve("illustration", {}).epochs == config_lib.Config().epochs  # counted in steps there


def test_presets_flip_and_fit_their_images_as_their_sources_did():
    settings = {name: (config_lib.resolve(name, {}).training.flip, config_lib.resolve(name, {}).training.fit)
                for name in ("illustration", "dcgan", "pokemon", "pokemon-wgan", "keras-margin")}
    assert settings == {"illustration": (True, "crop"), "dcgan": (False, "crop"), "pokemon": (False, "crop"),
                        "pokemon-wgan": (False, "crop"), "keras-margin": (False, "stretch")}
    with pytest.raises(UserError, match="fit must be one of"):
        config_lib.resolve("dcgan", {"fit": "pad"})


def test_stretch_keeps_the_whole_image_and_crop_its_centre():
    from illustration_gan import data

    image = np.zeros((10, 30, 3), np.uint8)
    image[:, :10, 0] = 255  # left third red, the rest black
    encoded = tf.io.encode_png(image)
    stretched = data.decode_to_rgb(encoded, 6, fit="stretch").numpy()
    cropped = data.decode_to_rgb(encoded, 6, fit="crop").numpy()
    assert stretched[:, :2, 0].min() == 255 and stretched[:, 2:, 0].max() == 0  # a third of the width, squeezed
    assert cropped[..., 0].max() == 0  # the centre square has no red


def test_training_batches_without_flips_keep_every_image_the_right_way_round(tmp_path):
    import cv2

    from illustration_gan import data

    folder = tmp_path / "faces"
    folder.mkdir()
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = 255  # white on the left
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), image)
    source = data.scan(str(folder))
    for flip, both_ways in ((False, False), (True, True)):
        batches = np.concatenate(list(data.training_dataset(source, 8, 4, seed=0, flip=flip).take(16)
                                      .as_numpy_iterator()))
        assert (len({bool(b[0, 0, 0] > 0) for b in batches}) == 2) is both_ways
