"""Tests of illustration_gan.metrics: scores on synthetic features (fast, no data needed),
the weight resolver, the nearest-neighbour check, and the FID network on the shared
weights and faces (skipped when ../shared/data is absent)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from illustration_gan import metrics
from illustration_gan.metrics import inception, nearest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WEIGHTS = DATA / "fid_inception_v3_2015-12-05.npz"
FACES = DATA / "anime_faces"

needs_weights = pytest.mark.skipif(
    not WEIGHTS.is_file(), reason=f"shared FID weights not found at {WEIGHTS} (shared test data absent)"
)
needs_faces = pytest.mark.skipif(
    not (WEIGHTS.is_file() and FACES.is_dir()),
    reason=f"shared FID weights or faces not found under {DATA} (shared test data absent)",
)


# ---------------------------------------------------------------------------------------
# Frechet distance


def _eigh_sqrt(s):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    got = metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_symmetric_formula():
    # Tr (S1 S2)^(1/2) = Tr (S1^(1/2) S2 S1^(1/2))^(1/2), computed independently with eigh.
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 10)), rng.normal(size=(10, 10))
    s1, s2 = a @ a.T + 0.1 * np.eye(10), b @ b.T + 0.1 * np.eye(10)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    r1 = _eigh_sqrt(s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * _eigh_sqrt(r1 @ s2 @ r1))
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert metrics.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-9)


def test_fid_of_singular_covariances_is_real_and_finite():
    # Fewer samples than dimensions: singular covariances, as with small evaluation sets.
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 20)), rng.normal(size=(8, 20)) + 1
    fid = metrics.fid_from_features(x, y)
    assert np.isfinite(fid) and fid > 0
    assert abs(metrics.fid_from_features(x, x)) < 1e-6 * np.trace(np.cov(x, rowvar=False))


def test_fid_from_few_samples_equals_the_full_computation():
    # n_real + n_fake < d: fid_from_features works in the span of the samples; same value.
    rng = np.random.default_rng(15)
    mixing = rng.normal(size=(200, 200))
    real = np.abs(rng.normal(size=(60, 200)) @ mixing)
    fake = np.abs(rng.normal(size=(40, 200)) @ mixing) * 1.2 + 0.5
    full = metrics.frechet_distance(*metrics.feature_statistics(real), *metrics.feature_statistics(fake))
    assert metrics.fid_from_features(real, fake) == pytest.approx(full, rel=1e-6)  # full: singular sqrtm noise
    assert abs(metrics.fid_from_features(real, real)) < 1e-7 * np.trace(np.cov(real, rowvar=False))


# ---------------------------------------------------------------------------------------
# KID, precision / recall, naming


def test_kid_is_unbiased_and_detects_a_shift():
    rng = np.random.default_rng(4)
    real = np.abs(rng.normal(size=(1000, 64)))
    same = np.abs(rng.normal(size=(1000, 64)))
    shifted = np.abs(rng.normal(size=(1000, 64))) + 0.15
    kid_same, std_same = metrics.kernel_inception_distance(real, same, num_subsets=50, subset_size=200)
    kid_shift, _ = metrics.kernel_inception_distance(real, shifted, num_subsets=50, subset_size=200)
    # The biased estimate (diagonal kept in) would be clearly positive for equal distributions.
    assert abs(kid_same) < std_same / 2
    assert kid_shift > 10 * std_same
    assert metrics.kernel_inception_distance(real, same, 10, 200, seed=7) == metrics.kernel_inception_distance(
        real, same, 10, 200, seed=7
    )


def test_kid_single_subset_matches_direct_unbiased_mmd():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 8)), rng.normal(size=(30, 8)) + 0.5
    kernel = lambda a, b: (a @ b.T / 8 + 1) ** 3  # noqa: E731
    m = 30
    expected = (
        sum(kernel(x[i : i + 1], x[j : j + 1])[0, 0] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        + sum(kernel(y[i : i + 1], y[j : j + 1])[0, 0] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        - 2 * kernel(x, y).mean()
    )
    kid, std = metrics.kernel_inception_distance(y, x, num_subsets=3, subset_size=30)  # whole sets, any order
    assert kid == pytest.approx(expected, rel=1e-10) and std == pytest.approx(0, abs=1e-12)


def test_precision_recall_matches_brute_force():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(16)
    real, fake = rng.normal(size=(120, 10)), rng.normal(size=(90, 10)) * 1.3 + 0.2

    def covered(probes, manifold, k=3):
        radii = np.sort(cdist(manifold, manifold), axis=1)[:, k]  # column 0: the point itself
        return np.mean([(cdist(p[None], manifold)[0] <= radii).any() for p in probes])

    precision, recall = metrics.precision_recall(real, fake, k=3)
    assert precision == pytest.approx(covered(fake, real)) and recall == pytest.approx(covered(real, fake))
    assert 0.05 < precision < 0.95  # a case where the radii matter


def test_precision_recall_of_a_set_against_itself():
    feats = np.random.default_rng(6).normal(size=(300, 32))
    assert metrics.precision_recall(feats, feats) == (1.0, 1.0)


def test_precision_recall_of_a_collapsed_set():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(300, 32))
    # Mode collapse: 6 real points, each produced 50 times with tiny variations.
    collapsed = np.repeat(real[:6], 50, axis=0) + 1e-3 * rng.normal(size=(300, 32))
    precision, recall = metrics.precision_recall(real, collapsed)
    assert precision > 0.95
    assert recall < 0.05
    # And a different distribution altogether is neither precise nor covering.
    far = rng.normal(size=(300, 32)) + 3
    assert max(metrics.precision_recall(real, far)) < 0.05


@pytest.mark.parametrize("n, label", [(500, "500"), (1000, "1k"), (2500, "2.5k"), (5000, "5k"), (50000, "50k"), (1234, "1.234k")])
def test_count_label(n, label):
    assert metrics.count_label(n) == label


def test_compute_all_names_scores_after_the_fake_count():
    rng = np.random.default_rng(8)
    real, fake = rng.normal(size=(600, 16)), rng.normal(size=(500, 16))
    scores = metrics.compute_all(real, fake)
    assert set(scores) == {"fid500", "kid500", "kid500_std", "precision500", "recall500"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in scores.values())
    assert scores["fid500"] == pytest.approx(metrics.fid_from_features(real, fake))


# ---------------------------------------------------------------------------------------
# Nearest neighbours


def test_nearest_neighbours_finds_planted_duplicates_in_mse_order():
    rng = np.random.default_rng(9)
    reals = rng.integers(0, 256, size=(200, 12, 12, 3), dtype=np.uint8)
    planted = np.array([17, 150, 3])
    fakes = np.clip(reals[planted].astype(int) + rng.integers(-3, 4, size=(3, 12, 12, 3)), 0, 255).astype(np.uint8)
    idx = metrics.nearest_neighbours(fakes, reals, k=5, block=64)  # several blocks of reals
    assert idx.shape == (3, 5)
    np.testing.assert_array_equal(idx[:, 0], planted)
    mse = ((fakes[:, None].astype(float) - reals[None].astype(float)) ** 2).mean(axis=(2, 3, 4))
    np.testing.assert_array_equal(idx, np.argsort(mse, axis=1, kind="stable")[:, :5])


def test_nearest_neighbours_in_feature_space():
    rng = np.random.default_rng(10)
    real_f = rng.normal(size=(100, 2048))
    fake_f = real_f[[42, 7]] + 0.01
    np.testing.assert_array_equal(metrics.nearest_neighbours(fake_f, real_f, k=3, metric="inception")[:, 0], [42, 7])
    with pytest.raises(ValueError):
        metrics.nearest_neighbours(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 3), np.uint8), metric="inception")


def test_nearest_neighbour_grid_layout():
    rng = np.random.default_rng(11)
    h, w, n, k = 10, 8, 4, 3
    fakes = rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    reals = rng.integers(0, 256, size=(20, h, w, 3), dtype=np.uint8)
    idx = rng.integers(0, 20, size=(n, k))
    grid = metrics.nearest_neighbour_grid(fakes, reals, idx)
    gap, sep = nearest.GAP, nearest.SEPARATOR
    assert grid.dtype == np.uint8
    assert grid.shape == ((k + 1) * h + (k + 1) * gap + sep, n * w + (n - 1) * gap, 3)
    for j in range(n):
        x = j * (w + gap)
        np.testing.assert_array_equal(grid[:h, x : x + w], fakes[j])
        for r in range(k):
            y = h + 2 * gap + sep + r * (h + gap)
            np.testing.assert_array_equal(grid[y : y + h, x : x + w], reals[idx[j, r]])
    assert (grid[h + gap : h + gap + sep] == nearest.SEPARATOR_COLOUR).all()


# ---------------------------------------------------------------------------------------
# Weight resolution


def test_resolve_fid_weights_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(metrics.DEFAULT_WEIGHTS_ENV, raising=False)
    explicit, from_env = tmp_path / "explicit.npz", tmp_path / "env.npz"
    cached = metrics.default_weights_cache_path()
    assert str(cached).startswith(str(tmp_path / "home"))
    for f in (explicit, from_env, cached):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    monkeypatch.setenv(metrics.DEFAULT_WEIGHTS_ENV, str(from_env))
    assert metrics.resolve_fid_weights(str(explicit)) == str(explicit)
    assert metrics.resolve_fid_weights() == str(from_env)
    monkeypatch.delenv(metrics.DEFAULT_WEIGHTS_ENV)
    assert metrics.resolve_fid_weights() == str(cached)
    assert metrics.resolve_fid_weights(None) == str(cached)


def test_resolve_fid_weights_not_found_explains_how_to_provide(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(metrics.DEFAULT_WEIGHTS_ENV, raising=False)
    with pytest.raises(metrics.FIDWeightsNotFound) as err:
        metrics.resolve_fid_weights()
    assert isinstance(err.value, FileNotFoundError)
    message = str(err.value)
    for needed in ("--fid_weights", metrics.DEFAULT_WEIGHTS_ENV, str(metrics.default_weights_cache_path()),
                   "inception-2015-12-05.tgz", "convert_tf_graph_to_npz"):
        assert needed in message
    # A wrong explicit path or env var is an error, not a silent fall-back to the cache.
    metrics.default_weights_cache_path().parent.mkdir(parents=True)
    metrics.default_weights_cache_path().write_bytes(b"x")
    with pytest.raises(metrics.FIDWeightsNotFound, match="does not exist"):
        metrics.resolve_fid_weights(str(tmp_path / "missing.npz"))
    monkeypatch.setenv(metrics.DEFAULT_WEIGHTS_ENV, str(tmp_path / "missing.npz"))
    with pytest.raises(metrics.FIDWeightsNotFound, match=metrics.DEFAULT_WEIGHTS_ENV):
        metrics.resolve_fid_weights()


def test_tf_scope_names():
    assert inception._tf_scope("conv_4") == "conv_4"
    assert inception._tf_scope("mixed_5.tower_1.conv_3") == "mixed_5/tower_1/conv_3"
    assert inception._tf_scope("mixed_9.tower_conv") == "mixed_9/tower/conv"
    assert inception._tf_scope("mixed_10.tower_mixed_conv_1") == "mixed_10/tower/mixed/conv_1"
    assert inception._tf_scope("mixed_10.tower_1_mixed_conv") == "mixed_10/tower_1/mixed/conv"
    assert inception._tf_scope("mixed_9.tower_2_conv") == "mixed_9/tower_2/conv"


@needs_weights
def test_convert_tf_graph_round_trip(tmp_path):
    # A stand-in for classify_image_graph_def.pb: the npz arrays as graph constants under the
    # original graph's names and layout. (The real file is not available offline.)
    import tarfile

    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    with np.load(WEIGHTS) as npz:
        reference = {k: npz[k] for k in npz.files}
    parts = {"weight": "conv2d_params", "beta": "batchnorm/beta", "mean": "batchnorm/moving_mean",
             "var": "batchnorm/moving_variance"}
    for key, value in reference.items():
        node, part = key[len("net.layers."):].rsplit(".", 1)
        if part == "weight":
            value = value.transpose(2, 3, 1, 0)
        const = graph_def.node.add(name=f"{inception._tf_scope(node)}/{parts[part]}", op="Const")
        const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    pb = tmp_path / "classify_image_graph_def.pb"
    pb.write_bytes(graph_def.SerializeToString())
    tgz = tmp_path / "inception-2015-12-05.tgz"
    with tarfile.open(tgz, "w:gz", compresslevel=1) as tar:
        tar.add(pb, arcname="classify_image_graph_def.pb")
    out = tmp_path / "converted.npz"
    metrics.convert_tf_graph_to_npz(str(tgz), str(out))
    with np.load(out) as converted:
        assert sorted(converted.files) == sorted(reference)
        for key, value in reference.items():
            np.testing.assert_array_equal(converted[key], value)


# ---------------------------------------------------------------------------------------
# The network on the shared weights and faces


@pytest.fixture(scope="module")
def extractor():
    if not WEIGHTS.is_file():
        pytest.skip(f"shared FID weights not found at {WEIGHTS}")
    return metrics.FeatureExtractor(str(WEIGHTS), batch_size=50)


@pytest.fixture(scope="module")
def face_features(extractor, tmp_path_factory):
    if not FACES.is_dir():
        pytest.skip(f"shared faces not found at {FACES}")
    files = [str(FACES / f"{i}.jpg") for i in range(120)]
    cache = tmp_path_factory.mktemp("fid_cache")
    return metrics.real_features(files, 64, None, extractor, cache_dir=str(cache)), files, cache


@needs_weights
def test_every_weight_array_is_loaded_exactly_once():
    model, nodes = inception.fid_inception_architecture()
    used = inception.load_fid_weights(model, nodes, str(WEIGHTS))
    with np.load(WEIGHTS) as npz:
        assert len(npz.files) == 376
        assert len(used) == len(set(used)) == 376
        assert set(used) == set(npz.files)
        np.testing.assert_array_equal(
            model.get_layer("mixed_10.tower_1_mixed_conv_1").kernel.numpy(),
            npz["net.layers.mixed_10.tower_1_mixed_conv_1.weight"].transpose(2, 3, 1, 0),
        )
        np.testing.assert_array_equal(
            model.get_layer("conv.bn").moving_variance.numpy(), npz["net.layers.conv.var"]
        )


@needs_weights
def test_a_weight_file_with_unused_arrays_is_rejected(tmp_path):
    with np.load(WEIGHTS) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(tmp_path / "extra.npz", **arrays, **{"net.layers.surplus.weight": np.zeros(3)})
    model, nodes = inception.fid_inception_architecture()
    with pytest.raises(ValueError, match="surplus"):
        inception.load_fid_weights(model, nodes, str(tmp_path / "extra.npz"))


@needs_weights
def test_architecture_is_keras_inception_v3_except_the_last_pool():
    import keras

    ours, nodes = inception.fid_inception_architecture(mixed_10_pool="avg")
    inception.load_fid_weights(ours, nodes, str(WEIGHTS))
    theirs = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None, input_shape=(299, 299, 3))

    def suffix(layer):
        tail = layer.name.rsplit("_", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    convs = sorted((l for l in theirs.layers if isinstance(l, keras.layers.Conv2D)), key=suffix)
    norms = sorted((l for l in theirs.layers if isinstance(l, keras.layers.BatchNormalization)), key=suffix)
    assert len(convs) == len(norms) == len(nodes) == 94
    for conv, norm, node in zip(convs, norms, nodes):
        conv.set_weights(ours.get_layer(node).get_weights())
        norm.set_weights(ours.get_layer(node + ".bn").get_weights())
    images = np.random.default_rng(12).uniform(0, 255, size=(2, 299, 299, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(images).numpy(), theirs(images / 128 - 1).numpy(), rtol=1e-5, atol=1e-5)
    fid_net = metrics.build_fid_inception(str(WEIGHTS))
    assert np.abs(fid_net(images).numpy() - ours(images).numpy()).max() > 1e-2  # max pool in mixed_10


def test_legacy_resize_matches_tf_compat_v1():
    import tensorflow as tf

    x = np.random.default_rng(13).uniform(0, 255, size=(1, 64, 64, 3)).astype(np.float32)
    ours = inception.LegacyResizeAndScale()(x).numpy()
    legacy = tf.compat.v1.image.resize_bilinear(x, (299, 299), align_corners=False, half_pixel_centers=False)
    np.testing.assert_allclose(ours, legacy.numpy() / 128 - 1, atol=1e-6)
    # Source pixel = destination pixel * 64/299: the top-left output pixel is the input's.
    np.testing.assert_allclose(ours[0, 0, 0], x[0, 0, 0] / 128 - 1, atol=1e-6)


@needs_faces
def test_face_features_are_finite_non_negative_and_cached(extractor, face_features):
    features, files, cache = face_features
    assert features.shape == (120, 2048) and features.dtype == np.float64
    assert np.isfinite(features).all()
    assert features.min() >= 0  # average pool of ReLU outputs
    assert features.std(axis=0).mean() > 0.01  # the images are told apart
    start = time.monotonic()
    again = metrics.real_features(list(reversed(files)), 64, None, extractor, cache_dir=str(cache))
    assert time.monotonic() - start < 2  # served from the cache, not recomputed
    np.testing.assert_array_equal(again, features)
    assert len(list(cache.glob("*.npz"))) == 1


@needs_faces
def test_real_features_survive_a_fresh_copy_of_the_dataset(extractor, face_features, tmp_path):
    """The cache is keyed by contents: copying the folder again (new mtimes) does not recompute."""
    import shutil

    features, files, cache = face_features
    for f in files:
        shutil.copy(f, tmp_path)  # copy, not copy2: the copies get new modification times
    again = metrics.real_features(str(tmp_path), 64, None, extractor, cache_dir=str(cache))
    np.testing.assert_array_equal(again, features)
    assert len(list(cache.glob("*.npz"))) == 1  # served from the same entry: a recomputation would add one


@needs_weights
def test_extractor_accepts_uint8_and_float_of_any_size(extractor):
    rng = np.random.default_rng(14)
    images = rng.integers(0, 256, size=(3, 40, 56, 3), dtype=np.uint8)
    a = extractor.features([images])
    b = extractor.features([images[:2].astype(np.float32), images[2:].astype(np.float32)])
    assert a.shape == (3, 2048)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@needs_faces
def test_fid_two_halves_of_faces_far_below_faces_against_noise(extractor, face_features):
    features = face_features[0]
    first, second = features[:60], features[60:]
    noise_fn = lambda n, seed: np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)  # noqa: E731
    noise = metrics.generated_features(noise_fn, 60, extractor, batch_size=25, seed=0)
    assert noise.shape == (60, 2048)
    fid_halves = metrics.fid_from_features(first, second)
    fid_noise = metrics.fid_from_features(first, noise)
    assert 0 < fid_halves < fid_noise / 2
    sigma = metrics.feature_statistics(features)[1]
    assert abs(metrics.fid_from_features(features, features)) < 1e-6 * 2 * np.trace(sigma)


def test_generated_features_checks_and_seeds_the_sampler():
    seen = []

    class FakeExtractor:
        def features(self, batches, total=None, desc=""):
            return np.concatenate([b.reshape(len(b), -1)[:, :4] for b in batches]).astype(np.float64)

    def sample(n, seed):
        seen.append((n, seed))
        return np.random.default_rng(seed).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)

    a = metrics.generated_features(sample, 250, FakeExtractor(), batch_size=100, seed=3)
    assert a.shape == (250, 4) and [n for n, _ in seen] == [100, 100, 50]
    assert len({s for _, s in seen}) == 3
    np.testing.assert_array_equal(a, metrics.generated_features(sample, 250, FakeExtractor(), 100, seed=3))
    assert not np.array_equal(a, metrics.generated_features(sample, 250, FakeExtractor(), 100, seed=4))
    with pytest.raises(ValueError, match="uint8"):
        metrics.generated_features(lambda n, s: np.zeros((n, 4, 4, 3)), 10, FakeExtractor())


# ---------------------------------------------------------------------------------------
# Issue 49: broken weight files and sets too small to score


@pytest.mark.parametrize("kind", ["random bytes", "an npy array", "other arrays", "torn"])
def test_a_file_that_is_not_the_fid_weights_is_one_line_before_the_network_is_built(tmp_path, kind):
    """Item 15: random bytes were a pickle ValueError traceback from np.load (after the run folder was made)."""
    path = tmp_path / "weights.npz"
    if kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "an npy array":
        np.save(path.with_suffix(".npy"), np.zeros(3))
        path.with_suffix(".npy").rename(path)
    elif kind == "other arrays":
        np.savez(path, images=np.zeros(3))
    else:
        np.savez(path, **{"net.layers.conv.weight": np.zeros((32, 3, 3, 3))})
        path.write_bytes(path.read_bytes()[:300])
    started = time.perf_counter()
    for load in (metrics.check_fid_weights, metrics.FeatureExtractor):
        with pytest.raises(metrics.FIDWeightsInvalid) as error:
            load(str(path))
        message = str(error.value)
        assert message.startswith(f"{path} is not the FID Inception weights") and "\n" not in message
    assert time.perf_counter() - started < 5  # refused from the zip's directory, no network built


def test_sets_too_small_to_score_are_refused_and_small_ones_noted():
    """Item 9: 3 or 1 real images were a traceback (precision/recall, the covariance); 5 gave an FID unremarked."""
    rng = np.random.default_rng(0)
    for n_real, n_fake in ((3, 10), (1, 10), (10, 2)):
        with pytest.raises(metrics.TooFewSamples, match=f"at least {metrics.MIN_SAMPLES} in each set"):
            metrics.compute_all(rng.normal(size=(n_real, 8)), rng.normal(size=(n_fake, 8)))
    assert metrics.MIN_SAMPLES == 4  # precision/recall's k = 3 neighbours and the image itself
    note = metrics.sample_count_note(5, 10)
    assert "FID of 5 real and 10 generated images" in note and "2049" in note and "KID" in note
    assert metrics.sample_count_note(2049, 5000) is None
    assert set(metrics.compute_all(rng.normal(size=(4, 8)), rng.normal(size=(4, 8)))) >= {"fid4", "precision4"}


@needs_faces
def test_evaluate_refuses_three_real_images_and_notes_five(tmp_path, caplog):
    from illustration_gan import UserError, evaluation

    folders = {}
    for n in (3, 5, 8):
        folders[n] = tmp_path / f"faces{n}"
        folders[n].mkdir()
        for i in range(n):
            (folders[n] / f"{i}.jpg").write_bytes((FACES / f"{100 + n + i}.jpg").read_bytes())
    cache = str(tmp_path / "cache")
    with pytest.raises(UserError, match=r"too few images to score \(real 3\)") as error:
        evaluation.compare_folders(str(folders[3]), str(folders[8]), 32, 100, str(WEIGHTS), cache)
    assert "\n" not in str(error.value)
    scores = evaluation.compare_folders(str(folders[5]), str(folders[8]), 32, 100, str(WEIGHTS), cache)
    assert scores["num_real"] == 5 and scores["num_compared"] == 8 and np.isfinite(scores["fid8"])
    assert "FID of 5 real and 8 generated images" in caplog.text
