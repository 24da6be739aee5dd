import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from illustration_gan import config as config_lib
from illustration_gan.config import PRESETS, ModelConfig
from illustration_gan.networks import ARCHITECTURES, BilinearUpsample2x, MinibatchDiscrimination, build_networks


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_ranges(architecture, size):
    config = ModelConfig(architecture=architecture, image_size=size, g_width=8, d_width=8, fc_units=32, minibatch_kernels=4)
    nets = build_networks(config)
    z = nets.generator.sample_latents(3, tf.constant([1, 2], tf.int64))
    images = nets.generator(z)
    assert images.shape == (3, size, size, 3)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0
    scores = nets.discriminator(images)
    assert scores.shape == (3,) and scores.dtype == tf.float32


def test_dcgan_matches_the_pytorch_tutorial_sizes():
    nets = build_networks(dataclasses.replace(PRESETS["dcgan"][0], image_size=64))
    # The tutorial's networks have 3,576,704 and 2,765,568 trainable parameters; so have ours, whose
    # output layers are bias-free as PyTorch's last convolutions are (framework="pytorch").
    trainable = lambda m: sum(int(np.prod(v.shape)) for v in m.trainable_variables)  # noqa: E731
    assert trainable(nets.generator) == 3_576_704
    assert trainable(nets.discriminator) == 2_765_568


def _bilinear_reference(x):
    """Half-pixel-centre bilinear 2x in NumPy, edges clamped."""
    n, h, w, c = x.shape
    def coords(size):
        src = (np.arange(2 * size) + 0.5) / 2 - 0.5
        lo = np.clip(np.floor(src).astype(int), 0, size - 1)
        hi = np.clip(lo + 1, 0, size - 1)
        frac = np.clip(src - np.floor(src), 0, 1)
        frac[src < 0] = 0
        return lo, hi, frac
    ylo, yhi, fy = coords(h)
    xlo, xhi, fx = coords(w)
    rows = x[:, ylo] * (1 - fy)[None, :, None, None] + x[:, yhi] * fy[None, :, None, None]
    return rows[:, :, xlo] * (1 - fx)[None, None, :, None] + rows[:, :, xhi] * fx[None, None, :, None]


def test_bilinear_upsampling_is_exact_and_untrained():
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    layer = BilinearUpsample2x()
    out = layer(x).numpy()
    assert out.shape == (2, 6, 8, 2)
    np.testing.assert_allclose(out, _bilinear_reference(x), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(out[0, 1, 1, 0], x[0, 0, 0, 0] * 0.5625 + x[0, 0, 1, 0] * 0.1875 + x[0, 1, 0, 0] * 0.1875 + x[0, 1, 1, 0] * 0.0625, rtol=1e-6)
    assert layer.trainable_weights == [] and layer.weights == []


def test_minibatch_discrimination_matches_numpy_and_excludes_self():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4, 6)).astype(np.float32)
    layer = MinibatchDiscrimination(num_kernels=3, kernel_dims=2)
    out = layer(features).numpy()
    m = (features @ layer.kernel.numpy()).reshape(4, 3, 2)
    expected = np.zeros((4, 3))
    for i in range(4):
        for j in range(4):
            if i != j:
                expected[i] += np.exp(-np.abs(m[i] - m[j]).sum(-1))
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    single = layer(features[:1]).numpy()
    np.testing.assert_allclose(single, 0.0, atol=1e-6)  # alone in its batch: nothing to compare with
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(layer(features))
    grad = tape.gradient(total, layer.kernel)
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0


def test_zpredictor_gradient_reaches_generator_fc_and_predictor_not_discriminator():
    config = ModelConfig(architecture="illustration", image_size=32, g_width=8, d_width=8, fc_units=16,
                         minibatch_kernels=4, z_predictor=True)
    nets = build_networks(config)
    z = nets.generator.sample_latents(4, tf.constant([3, 4], tf.int64))
    from illustration_gan.training.losses import z_prediction_loss

    variables = nets.generator.trainable_variables + nets.z_predictor.trainable_variables + nets.discriminator.trainable_variables
    with tf.GradientTape() as tape:
        images, features = nets.generator(z, training=True, return_features=True)
        loss = tf.reduce_mean(z_prediction_loss(z, nets.z_predictor(features, training=True)))
    grads = dict(zip([v.path for v in variables], tape.gradient(loss, variables)))
    fc = [p for p in grads if "fully_connected" in p and p.startswith("generator")]
    assert fc and all(grads[p] is not None for p in fc)
    assert all(grads[v.path] is not None for v in nets.z_predictor.trainable_variables)
    assert all(grads[v.path] is None for v in nets.discriminator.trainable_variables)
    assert all(grads[p] is None for p in grads if p.startswith("generator") and "upsample" in p)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_generators_save_and_reload_as_keras_files(tmp_path, architecture):
    config = ModelConfig(architecture=architecture, image_size=32, g_width=8, d_width=8, fc_units=16)
    generator = build_networks(config).generator
    z = generator.sample_latents(2, tf.constant([5, 6], tf.int64))
    path = tmp_path / "g.keras"
    generator.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    assert type(reloaded) is type(generator)
    np.testing.assert_allclose(reloaded(z).numpy(), generator(z).numpy(), atol=1e-6)


def test_spectral_norm_divides_by_the_largest_singular_value_and_tracks_it_in_training():
    from illustration_gan.networks.layers import SpectralNormConv2D

    keras.utils.set_random_seed(0)  # the kernel and u are drawn at random; fixed, 30 steps converge to 1e-3
    conv = SpectralNormConv2D(6, 3, 1, "same", use_bias=False)
    x = tf.random.stateless_normal((2, 5, 5, 4), [1, 2])
    conv(x)
    raw = conv.kernel.numpy().reshape(-1, 6)
    sigma = np.linalg.svd(raw, compute_uv=False)[0]
    u_before = conv.sn_u.numpy().copy()
    conv(x, training=False)
    np.testing.assert_array_equal(conv.sn_u.numpy(), u_before)  # inference leaves u alone
    for _ in range(30):  # power iteration, one step per training call
        conv(x, training=True)
    normalized = conv.normalized_kernel(training=False).numpy().reshape(-1, 6)
    assert np.linalg.svd(normalized, compute_uv=False)[0] == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(normalized * sigma, raw, rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(conv.kernel.numpy().reshape(-1, 6), raw)  # the variable keeps the raw weights
    expected = tf.nn.conv2d(x, raw.reshape(3, 3, 4, 6) / sigma, 1, "SAME").numpy()
    np.testing.assert_allclose(conv(x).numpy(), expected, rtol=1e-3, atol=1e-5)


def test_spectral_norm_gradient_flows_through_sigma():
    from illustration_gan.networks.layers import SpectralNormDense

    dense = SpectralNormDense(3, use_bias=False)
    x = tf.random.stateless_normal((4, 5), [3, 4])
    dense(x)
    for _ in range(30):
        dense(x, training=True)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(dense(x) ** 2)
    grad = tape.gradient(y, dense.kernel).numpy()
    # Scaling the kernel does not change W / sigma(W), so the gradient is orthogonal to W.
    assert abs(float(np.sum(grad * dense.kernel.numpy()))) < 1e-3 * np.abs(grad).sum()
    assert np.abs(grad).max() > 1e-4


def test_spectral_norm_discriminator_has_no_batch_norm_and_reloads(tmp_path):
    config = ModelConfig(architecture="dcgan", image_size=32, g_width=8, d_width=8, spectral_norm=True, d_norm="none")
    discriminator = build_networks(config).discriminator  # d_norm="none", as in `fast`, leaves the SN convolutions bias-free
    images = tf.random.stateless_uniform((3, 32, 32, 3), [7, 8], -1, 1)
    discriminator(images, training=True)
    names = [type(layer).__name__ for layer in discriminator.body.layers]
    assert "BatchNormalization" not in names
    assert names.count("SpectralNormConv2D") == config.levels
    assert not any(layer.use_bias for layer in discriminator.body.layers if isinstance(layer, keras.layers.Conv2D))
    assert type(discriminator.score).__name__ == "SpectralNormDense"
    path = tmp_path / "d.keras"
    discriminator.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(reloaded(images).numpy(), discriminator(images).numpy(), atol=1e-5)


def test_batch_norm_hides_a_contrast_change_of_the_whole_batch_and_d_norm_none_does_not():
    # In training mode D normalises a batch of only fakes by that batch's own statistics. The dcgan
    # D's first layer is linear and LeakyReLU is positively homogeneous, so its scores are blind to
    # every image of the batch losing contrast (x -> 0.7 x); without batch norm D sees it.
    images = tf.random.stateless_uniform((6, 32, 32, 3), [5, 6], -1, 1)
    changes = {}
    for d_norm in ("batch", "none"):
        config = ModelConfig(architecture="dcgan", image_size=32, d_width=8, d_norm=d_norm)
        discriminator = build_networks(config).discriminator
        for conv in discriminator.body.layers:  # at N(0, 0.02) the variances are near batch norm's epsilon
            if isinstance(conv, keras.layers.Conv2D):
                conv.kernel.assign(conv.kernel * 10.0)
        scores = discriminator(images, training=True)
        changes[d_norm] = float(tf.reduce_max(tf.abs(discriminator(0.7 * images, training=True) - scores)))
    assert changes["batch"] < 1e-5
    assert changes["none"] > 1e-2


@pytest.mark.parametrize("architecture", ["dcgan", "illustration"])
def test_d_norm_none_has_biases_and_no_batch_norm_and_reloads(architecture, tmp_path):
    images = tf.random.stateless_uniform((3, 32, 32, 3), [7, 8], -1, 1)
    for d_norm in ("batch", "none"):
        config = ModelConfig(architecture=architecture, image_size=32, d_width=8, fc_units=16, d_norm=d_norm)
        discriminator = build_networks(config).discriminator
        discriminator(images)
        names = [type(layer).__name__ for layer in discriminator.body.layers]
        assert ("BatchNormalization" in names) == (d_norm == "batch")
    convolutions = [layer for layer in discriminator.body.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convolutions) == config.levels and all(conv.use_bias for conv in convolutions)
    path = tmp_path / "d.keras"
    discriminator.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    assert reloaded.model_config.d_norm == "none"
    np.testing.assert_allclose(reloaded(images).numpy(), discriminator(images).numpy(), atol=1e-5)


def test_resize_convolution_generator_has_no_transposed_convolutions_and_reloads(tmp_path):
    config = ModelConfig(architecture="dcgan", image_size=32, g_width=8, d_width=8, upsampling="resize")
    generator = build_networks(config).generator
    names = [type(layer).__name__ for layer in generator.upsample.layers]
    assert "Conv2DTranspose" not in names
    assert names.count("UpSampling2D") == config.levels
    z = generator.sample_latents(3, tf.constant([3, 4], tf.int64))
    images = generator(z)
    assert images.shape == (3, 32, 32, 3)
    path = tmp_path / "g.keras"
    generator.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    assert reloaded.model_config.upsampling == "resize"
    np.testing.assert_allclose(reloaded(z).numpy(), images.numpy(), atol=1e-5)


def test_a_generator_saved_before_options_were_pruned_still_loads():
    """generator.keras written at b48cc7b, whose config still names pack and minibatch_stddev."""
    import illustration_gan.networks  # noqa: F401  (registers the classes)

    generator = keras.saving.load_model(Path(__file__).parent / "data" / "run-b48cc7b" / "generator.keras")
    images = generator(generator.sample_latents(3, tf.constant([1, 2], tf.int64)))
    assert images.shape == (3, 32, 32, 3) and generator.model_config.g_width == 4
    assert "pack" not in generator.get_config()["config"]


def _value_and_grads(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        y = tf.cast(y, tf.float32)
        loss = tf.reduce_sum(y * tf.reshape(tf.cast(tf.range(tf.size(y)) % 7 - 3, tf.float32), y.shape))
    x_grad, kernel_grad = tape.gradient(loss, [x, layer.kernel])
    return [tf.cast(t, tf.float32).numpy() for t in (y, x_grad, kernel_grad)]


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize(
    "transposed,shape,filters,kernel,stride",
    [(False, (3, 8, 8, 16), 24, 4, 2), (False, (2, 7, 9, 5), 6, 4, 2), (False, (2, 8, 8, 12), 5, 3, 1),
     (True, (3, 4, 4, 16), 8, 4, 2)],
)
def test_matmul_kernel_gradient_layers_equal_keras_layers(policy, transposed, shape, filters, kernel, stride):
    """Same values, input gradients and kernel gradients as Keras' layers with the same weights."""
    from illustration_gan.networks import matmul_grad

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        ours = (matmul_grad.Conv2DTranspose if transposed else matmul_grad.Conv2D)(filters, kernel, stride, "same")
        stock = (keras.layers.Conv2DTranspose if transposed else keras.layers.Conv2D)(filters, kernel, stride, "same")
        ours.build(shape), stock.build(shape)
        rng = np.random.default_rng(0)
        weights = [rng.normal(size=w.shape).astype(np.float32) * 0.2 for w in ours.get_weights()]
        ours.set_weights(weights), stock.set_weights(weights)
        x = tf.constant(rng.normal(size=shape), tf.float32)
        tolerance = 1e-5 if policy == "float32" else 2e-2  # bfloat16 keeps 8 bits of mantissa
        for got, want in zip(_value_and_grads(ours, x), _value_and_grads(stock, x)):
            np.testing.assert_allclose(got, want, atol=tolerance * np.abs(want).max())
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_matmul_kernel_gradient_equals_the_convolution_gradient_in_float32():
    """The bfloat16 path's kernel gradient, checked at float32 precision against TensorFlow's."""
    from illustration_gan.networks.matmul_grad import conv2d

    rng = np.random.default_rng(1)
    for shape, kernel_shape, stride in [((2, 8, 6, 5), (4, 4, 5, 7), 2), ((2, 5, 5, 3), (3, 3, 3, 4), 1),
                                        ((1, 9, 7, 2), (4, 4, 2, 3), 2)]:
        x = tf.constant(rng.normal(size=shape), tf.float32)
        k = tf.constant(rng.normal(size=kernel_shape), tf.float32)
        grads = []
        for convolve in (conv2d, lambda x, k, s: tf.nn.conv2d(x, k, s, "SAME")):
            with tf.GradientTape() as tape:
                tape.watch([x, k])
                loss = tf.reduce_sum(convolve(x, k, stride) ** 2)
            grads.append([g.numpy() for g in tape.gradient(loss, [x, k])])
        for got, want in zip(*grads):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_transposed_dcgan_generator_saved_with_keras_layers_still_loads():
    """generator.keras written at e30ce9a, before D's and G's small-map layers took the matmul
    kernel gradient: its weights are stored under Keras' layer names and must load into them."""
    from illustration_gan.networks import matmul_grad

    folder = Path(__file__).parent / "data" / "dcgan-e30ce9a"
    generator = keras.saving.load_model(folder / "generator.keras", compile=False)
    kinds = [type(layer) for layer in generator.upsample.layers if "Transpose" in type(layer).__name__]
    assert kinds[:2] == [matmul_grad.Conv2DTranspose] * 2 and kinds[2] is keras.layers.Conv2DTranspose
    images = generator(generator.sample_latents(2, tf.constant([5, 6], tf.int64)))
    np.testing.assert_allclose(images.numpy(), np.load(folder / "images.npy").astype(np.float32), atol=2e-3)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 5, 7, 12), (2, 2, 1, 12)])
def test_fused_batch_norm_equals_keras_batch_norm(policy, training, shape):
    """Same outputs, gradients (input, gamma, beta) and moving statistics as Keras' layer with the
    same weights, in training and inference mode. In float32 the layer is Keras' own; in bfloat16
    the fused kernel, and at 4 values a channel its Bessel-corrected variance (4/3 of Keras')
    would move the statistics far outside the tolerance."""
    from illustration_gan.networks import fused_batch_norm

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        ours, stock = fused_batch_norm.BatchNormalization(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
        ours.build(shape), stock.build(shape)
        rng = np.random.default_rng(2)
        weights = [rng.normal(1.0, 0.3, size=(12,)).astype(np.float32), rng.normal(size=(12,)).astype(np.float32),
                   rng.normal(size=(12,)).astype(np.float32), rng.uniform(0.5, 2.0, size=(12,)).astype(np.float32)]
        ours.set_weights(weights), stock.set_weights(weights)
        x = tf.constant(rng.normal(2.0, 3.0, size=shape), tf.float32)
        weight = tf.reshape(tf.cast(tf.range(np.prod(shape)) % 7 - 3, tf.float32), shape)
        results = []
        for layer in (ours, stock):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.cast(layer(tf.cast(x, layer.compute_dtype), training=training), tf.float32)
                loss = tf.reduce_sum(y * weight)
            grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
            results.append([y.numpy()] + [tf.cast(g, tf.float32).numpy() for g in grads]
                           + [layer.moving_mean.numpy(), layer.moving_variance.numpy()])
        tolerance = 1e-4 if policy == "float32" else 2e-2  # bfloat16 keeps 8 bits of mantissa
        for got, want in zip(*results):
            np.testing.assert_allclose(got, want, atol=tolerance * np.abs(want).max())
        if training:  # the statistics moved towards this batch's
            assert np.abs(results[0][-1] - weights[3]).max() > 0.1
        # The fused kernel runs in bfloat16 only, where it was measured faster.
        graph = tf.function(lambda t: ours(t, training=training)).get_concrete_function(
            tf.TensorSpec(shape, ours.compute_dtype)).graph
        fused = any(op.type == "FusedBatchNormV3" for op in graph.get_operations())
        assert fused == (policy == "mixed_bfloat16")
    finally:
        keras.mixed_precision.set_global_policy(previous)
