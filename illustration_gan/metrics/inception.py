"""The FID Inception network, rebuilt in Keras 3, and where its weights come from.

Every published FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale
Update Rule Converge to a Local Nash Equilibrium", https://arxiv.org/abs/1706.08500)
uses one particular network: the TensorFlow graph ``inception-2015-12-05``
(``classify_image_graph_def.pb``) that the authors' TTUR code loads. It is an
Inception-v3 that differs from ``keras.applications.InceptionV3`` in one place:
the pooling branch of the last block (``mixed_10``) is a 3x3 *max* pool.
pytorch-fid (mseitzer) and NVIDIA's StyleGAN metrics re-implement that graph;
this module does the same in Keras, naming every convolution after its node in
the original graph, so the weight file maps onto the layers by name:

* input RGB in [0, 255], resized to 299x299 with TensorFlow's *legacy*
  ``ResizeBilinear`` (``align_corners=False, half_pixel_centers=False``,
  i.e. source pixel = destination pixel * in/out), as in the original graph;
* scaled to ``x / 128 - 1``;
* 94 convolutions, each followed by batch normalisation without scale
  (epsilon 1e-3) and ReLU;
* the feature is the 2048-d global average pool of ``mixed_10``.

Weights: ``fid_inception_v3_2015-12-05.npz`` with keys
``net.layers.<node>.{weight,beta,mean,var}`` and kernels stored as
(out, in, kh, kw). ``resolve_fid_weights`` finds the file;
``convert_tf_graph_to_npz`` writes it from the original TensorFlow graph.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
import zlib
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

DEFAULT_WEIGHTS_ENV = "ILLUSTRATION_GAN_FID_WEIGHTS"
WEIGHTS_FILENAME = "fid_inception_v3_2015-12-05.npz"
TF_GRAPH_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
TF_GRAPH_MEMBER = "classify_image_graph_def.pb"
INPUT_SIZE = 299
FEATURE_DIM = 2048
_KEY_PREFIX = "net.layers."
_PARTS = ("weight", "beta", "mean", "var")


class FIDWeightsNotFound(FileNotFoundError):
    """The FID Inception weight file could not be found (see the message for how to provide it)."""


class FIDWeightsInvalid(ValueError):
    """A file given as the FID Inception weights that is not them (random bytes, a torn download, other arrays)."""


def default_weights_cache_path() -> Path:
    """``fid_inception_v3_2015-12-05.npz`` in the cache root (``illustration_gan.cache_root()``, read at call time)."""
    from illustration_gan import cache_root

    return Path(cache_root()) / WEIGHTS_FILENAME


def _how_to_provide() -> str:
    cache = default_weights_cache_path()
    return (
        "Provide the FID Inception weights file (fid_inception_v3_2015-12-05.npz) in one of "
        "three ways, checked in this order:\n"
        "  1. pass it explicitly: --fid_weights /path/to/fid_inception_v3_2015-12-05.npz\n"
        f"  2. set the environment variable: export {DEFAULT_WEIGHTS_ENV}=/path/to/"
        "fid_inception_v3_2015-12-05.npz\n"
        f"  3. copy it to the cache path: {cache}\n"
        "With internet access you can make the file from the original TensorFlow graph that all "
        f"published FIDs use: download {TF_GRAPH_URL} (it contains {TF_GRAPH_MEMBER}) and run\n"
        "  python -c \"from illustration_gan.metrics import convert_tf_graph_to_npz; "
        f"convert_tf_graph_to_npz('inception-2015-12-05.tgz', '{cache}')\""
    )


def resolve_fid_weights(path: str | os.PathLike | None = None) -> str:
    """Return the path of the FID weights: ``path``, else $ILLUSTRATION_GAN_FID_WEIGHTS, else the cache file.

    A path given explicitly (argument or environment variable) that does not exist is an
    error rather than a silent fall-back to the next source.
    Raises FIDWeightsNotFound with instructions when nothing is found.
    """
    if path:
        if os.path.isfile(path):
            return str(path)
        raise FIDWeightsNotFound(f"FID weights file given explicitly does not exist: {path}\n" + _how_to_provide())
    from_env = os.environ.get(DEFAULT_WEIGHTS_ENV)
    if from_env:
        if os.path.isfile(from_env):
            return from_env
        raise FIDWeightsNotFound(
            f"{DEFAULT_WEIGHTS_ENV}={from_env} does not point to an existing file.\n" + _how_to_provide()
        )
    cache = default_weights_cache_path()
    if cache.is_file():
        return str(cache)
    raise FIDWeightsNotFound("FID Inception weights not found.\n" + _how_to_provide())


def check_fid_weights(path: str | os.PathLike | None = None) -> str:
    """``resolve_fid_weights(path)``, checked to be an npz of this network's arrays: from the zip's
    directory alone, so a bad file is refused in milliseconds, before a run folder is made."""
    path = resolve_fid_weights(path)
    if not zipfile.is_zipfile(path):  # random bytes, a download cut short (the zip's directory is at its end)
        raise _invalid(path, f"it is not an .npz (zip) archive ({os.path.getsize(path):,} bytes)")
    try:
        with np.load(path) as npz:
            names = list(npz.files)
    except Exception as error:  # noqa: BLE001  (np.load: ValueError, OSError, BadZipFile, EOFError, ... by content)
        raise _invalid(path, f"it does not open as an .npz ({type(error).__name__}: {error})") from None
    foreign = [n for n in names if not (n.startswith(_KEY_PREFIX) and n.rsplit(".", 1)[-1] in _PARTS)]
    if not names or foreign:
        raise _invalid(path, f"its arrays are not {_KEY_PREFIX}<node>.{{{','.join(_PARTS)}}} (e.g. {(foreign or ['none'])[0]!r})")
    return path


def _invalid(path, reason: str) -> FIDWeightsInvalid:
    reason = " ".join(reason.split())[:200]
    return FIDWeightsInvalid(f"{path} is not the FID Inception weights ({WEIGHTS_FILENAME}): {reason}; "
                             "docs/evaluation.md says where to get the file")


# --------------------------------------------------------------------------------------
# The network. Each convolution is named after its node in the original graph.


class LegacyResizeAndScale(keras.layers.Layer):
    """Resize to 299x299 as the original graph does (legacy bilinear) and scale to x/128 - 1."""

    def call(self, images):
        x = tf.cast(images, tf.float32)
        x = tf.raw_ops.ResizeBilinear(
            images=x, size=[INPUT_SIZE, INPUT_SIZE], align_corners=False, half_pixel_centers=False
        )
        return x / 128.0 - 1.0

    def compute_output_shape(self, input_shape):
        return (input_shape[0], INPUT_SIZE, INPUT_SIZE, input_shape[-1])


class _Builder:
    """Creates conv + batch norm + ReLU units and remembers their node names in creation order."""

    def __init__(self):
        self.nodes: list[str] = []

    def conv(self, x, node, filters, kh, kw, strides=1, padding="same"):
        self.nodes.append(node)
        x = keras.layers.Conv2D(filters, (kh, kw), strides=strides, padding=padding, use_bias=False, name=node)(x)
        x = keras.layers.BatchNormalization(scale=False, epsilon=1e-3, name=node + ".bn")(x)
        return keras.layers.ReLU(name=node + ".relu")(x)


def _avg_pool_3x3(x, name):
    # TensorFlow's SAME average pool leaves the padding out of the count, as the original graph does.
    return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)


def _block_a(b, x, m, pool_filters):  # mixed, mixed_1, mixed_2 (35x35)
    branch1x1 = b.conv(x, f"{m}.conv", 64, 1, 1)
    tower = b.conv(x, f"{m}.tower.conv", 48, 1, 1)
    tower = b.conv(tower, f"{m}.tower.conv_1", 64, 5, 5)
    tower_1 = b.conv(x, f"{m}.tower_1.conv", 64, 1, 1)
    tower_1 = b.conv(tower_1, f"{m}.tower_1.conv_1", 96, 3, 3)
    tower_1 = b.conv(tower_1, f"{m}.tower_1.conv_2", 96, 3, 3)
    tower_2 = _avg_pool_3x3(x, f"{m}.tower_2.pool")
    tower_2 = b.conv(tower_2, f"{m}.tower_2.conv", pool_filters, 1, 1)
    return keras.layers.Concatenate(name=m)([branch1x1, tower, tower_1, tower_2])


def _block_b(b, x, m):  # mixed_3: 35x35 -> 17x17
    branch3x3 = b.conv(x, f"{m}.conv", 384, 3, 3, strides=2, padding="valid")
    tower = b.conv(x, f"{m}.tower.conv", 64, 1, 1)
    tower = b.conv(tower, f"{m}.tower.conv_1", 96, 3, 3)
    tower = b.conv(tower, f"{m}.tower.conv_2", 96, 3, 3, strides=2, padding="valid")
    pool = keras.layers.MaxPooling2D(3, strides=2, name=f"{m}.pool")(x)
    return keras.layers.Concatenate(name=m)([branch3x3, tower, pool])


def _block_c(b, x, m, c7):  # mixed_4 .. mixed_7 (17x17, factorised 7x7)
    branch1x1 = b.conv(x, f"{m}.conv", 192, 1, 1)
    tower = b.conv(x, f"{m}.tower.conv", c7, 1, 1)
    tower = b.conv(tower, f"{m}.tower.conv_1", c7, 1, 7)
    tower = b.conv(tower, f"{m}.tower.conv_2", 192, 7, 1)
    tower_1 = b.conv(x, f"{m}.tower_1.conv", c7, 1, 1)
    tower_1 = b.conv(tower_1, f"{m}.tower_1.conv_1", c7, 7, 1)
    tower_1 = b.conv(tower_1, f"{m}.tower_1.conv_2", c7, 1, 7)
    tower_1 = b.conv(tower_1, f"{m}.tower_1.conv_3", c7, 7, 1)
    tower_1 = b.conv(tower_1, f"{m}.tower_1.conv_4", 192, 1, 7)
    tower_2 = _avg_pool_3x3(x, f"{m}.tower_2.pool")
    tower_2 = b.conv(tower_2, f"{m}.tower_2.conv", 192, 1, 1)
    return keras.layers.Concatenate(name=m)([branch1x1, tower, tower_1, tower_2])


def _block_d(b, x, m):  # mixed_8: 17x17 -> 8x8
    tower = b.conv(x, f"{m}.tower.conv", 192, 1, 1)
    tower = b.conv(tower, f"{m}.tower.conv_1", 320, 3, 3, strides=2, padding="valid")
    tower_1 = b.conv(x, f"{m}.tower_1.conv", 192, 1, 1)
    tower_1 = b.conv(tower_1, f"{m}.tower_1.conv_1", 192, 1, 7)
    tower_1 = b.conv(tower_1, f"{m}.tower_1.conv_2", 192, 7, 1)
    tower_1 = b.conv(tower_1, f"{m}.tower_1.conv_3", 192, 3, 3, strides=2, padding="valid")
    pool = keras.layers.MaxPooling2D(3, strides=2, name=f"{m}.pool")(x)
    return keras.layers.Concatenate(name=m)([tower, tower_1, pool])


def _block_e(b, x, m, pool):  # mixed_9, mixed_10 (8x8, expanded filter bank)
    branch1x1 = b.conv(x, f"{m}.conv", 320, 1, 1)
    tower = b.conv(x, f"{m}.tower_conv", 384, 1, 1)
    tower = keras.layers.Concatenate(name=f"{m}.tower_mixed")(
        [b.conv(tower, f"{m}.tower_mixed_conv", 384, 1, 3), b.conv(tower, f"{m}.tower_mixed_conv_1", 384, 3, 1)]
    )
    tower_1 = b.conv(x, f"{m}.tower_1_conv", 448, 1, 1)
    tower_1 = b.conv(tower_1, f"{m}.tower_1_conv_1", 384, 3, 3)
    tower_1 = keras.layers.Concatenate(name=f"{m}.tower_1_mixed")(
        [b.conv(tower_1, f"{m}.tower_1_mixed_conv", 384, 1, 3), b.conv(tower_1, f"{m}.tower_1_mixed_conv_1", 384, 3, 1)]
    )
    if pool == "max":  # the FID network's one difference from keras.applications.InceptionV3
        tower_2 = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{m}.tower_2_pool")(x)
    else:
        tower_2 = _avg_pool_3x3(x, f"{m}.tower_2_pool")
    tower_2 = b.conv(tower_2, f"{m}.tower_2_conv", 192, 1, 1)
    return keras.layers.Concatenate(name=m)([branch1x1, tower, tower_1, tower_2])


def fid_inception_architecture(mixed_10_pool: str = "max") -> tuple[keras.Model, list[str]]:
    """The untrained FID network and its 94 convolution node names in creation order.

    ``mixed_10_pool="avg"`` gives plain keras.applications.InceptionV3 (used by the tests to
    check the architecture against Keras' own).
    """
    b = _Builder()
    images = keras.Input((None, None, 3), dtype="float32", name="images")
    x = LegacyResizeAndScale(name="resize_and_scale")(images)
    x = b.conv(x, "conv", 32, 3, 3, strides=2, padding="valid")
    x = b.conv(x, "conv_1", 32, 3, 3, padding="valid")
    x = b.conv(x, "conv_2", 64, 3, 3)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool")(x)
    x = b.conv(x, "conv_3", 80, 1, 1, padding="valid")
    x = b.conv(x, "conv_4", 192, 3, 3, padding="valid")
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool_1")(x)
    x = _block_a(b, x, "mixed", 32)
    x = _block_a(b, x, "mixed_1", 64)
    x = _block_a(b, x, "mixed_2", 64)
    x = _block_b(b, x, "mixed_3")
    x = _block_c(b, x, "mixed_4", 128)
    x = _block_c(b, x, "mixed_5", 160)
    x = _block_c(b, x, "mixed_6", 160)
    x = _block_c(b, x, "mixed_7", 192)
    x = _block_d(b, x, "mixed_8")
    x = _block_e(b, x, "mixed_9", pool="avg")
    x = _block_e(b, x, "mixed_10", pool=mixed_10_pool)
    features = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)
    return keras.Model(images, features, name="fid_inception_v3"), b.nodes


def load_fid_weights(model: keras.Model, nodes: list[str], weights_path: str) -> list[str]:
    """Copy the npz arrays into the model; return the keys used, in order of use.

    Raises ValueError unless every array of the file is used exactly once with the right shape.
    """
    used: list[str] = []
    check_fid_weights(weights_path)
    try:
        with np.load(weights_path) as npz:
            available = set(npz.files)
            for node in nodes:
                keys = [f"{_KEY_PREFIX}{node}.{part}" for part in _PARTS]
                missing = [k for k in keys if k not in available]
                if missing:
                    raise _invalid(weights_path, f"missing arrays {missing}")
                kernel, beta, mean, var = (npz[k] for k in keys)
                conv, bn = model.get_layer(node), model.get_layer(node + ".bn")
                expected = tuple(conv.kernel.shape)
                kernel = kernel.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
                if kernel.shape != expected:
                    raise _invalid(weights_path, f"{node} kernel has shape {kernel.shape}, expected {expected}")
                conv.set_weights([kernel])
                bn.set_weights([beta, mean, var])  # scale=False: [beta, moving_mean, moving_variance]
                used.extend(keys)
            unused = sorted(available - set(used))
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:  # an array cut short in the zip
        raise _invalid(weights_path, f"an array does not read ({type(error).__name__}: {error})") from None
    if unused or len(used) != len(set(used)):
        raise _invalid(weights_path, f"arrays not used by the network: {unused[:10]} ({len(unused)} in all)")
    return used


def build_fid_inception(weights_path: str) -> keras.Model:
    """The FID Inception-v3 with weights loaded.

    Input: (N, H, W, 3) RGB in [0, 255], uint8 or float32, any H and W.
    Output: (N, 2048) float32 pool_3 features.
    """
    model, nodes = fid_inception_architecture()
    load_fid_weights(model, nodes, weights_path)
    model.trainable = False
    return model


# --------------------------------------------------------------------------------------
# Converter from the original TensorFlow graph.


def _tf_scope(node: str) -> str:
    """npz node name -> the scope of the same convolution in classify_image_graph_def.pb.

    ``mixed.tower.conv`` -> ``mixed/tower/conv``; in mixed_9 / mixed_10 the npz flattens the
    towers: ``mixed_9.tower_1_mixed_conv_1`` -> ``mixed_9/tower_1/mixed/conv_1``.
    """
    block, _, rest = node.partition(".")
    if block in ("mixed_9", "mixed_10"):
        for tower in ("tower_1", "tower_2", "tower"):
            if rest.startswith(tower + "_"):
                rest = tower + "/" + rest[len(tower) + 1 :].replace("mixed_", "mixed/")
                break
    return node.replace(".", "/") if not rest else f"{block}/{rest.replace('.', '/')}"


def convert_tf_graph_to_npz(pb_path: str, npz_path: str) -> None:
    """Write the FID weight npz from the original TensorFlow graph.

    ``pb_path`` is ``classify_image_graph_def.pb`` or the ``inception-2015-12-05.tgz`` that
    contains it. The graph keeps each convolution's kernel in the constant
    ``<scope>/conv2d_params`` (kh, kw, in, out) and its batch norm in
    ``<scope>/batchnorm/{beta,moving_mean,moving_variance}`` (its ``gamma`` is unused: the op
    runs with scale_after_normalization=False).

    Only tested offline against a graph built from the npz itself: the node naming follows
    the published converters of that graph (chainer-inception-score, pytorch-fid); it has not
    been run against the downloaded file.
    """
    if str(pb_path).endswith((".tgz", ".tar.gz")):
        with tarfile.open(pb_path, "r:gz") as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(TF_GRAPH_MEMBER))
            data = tar.extractfile(member).read()
    else:
        data = Path(pb_path).read_bytes()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    constants = {n.name: n for n in graph_def.node if n.op == "Const"}

    def constant(name):
        if name not in constants:
            raise ValueError(f"{pb_path}: no constant named {name!r}; is this classify_image_graph_def.pb?")
        return tf.make_ndarray(constants[name].attr["value"].tensor).astype(np.float32)

    _, nodes = fid_inception_architecture()
    arrays = {}
    for node in nodes:
        scope = _tf_scope(node)
        arrays[f"{_KEY_PREFIX}{node}.weight"] = constant(f"{scope}/conv2d_params").transpose(3, 2, 0, 1)
        arrays[f"{_KEY_PREFIX}{node}.beta"] = constant(f"{scope}/batchnorm/beta")
        arrays[f"{_KEY_PREFIX}{node}.mean"] = constant(f"{scope}/batchnorm/moving_mean")
        arrays[f"{_KEY_PREFIX}{node}.var"] = constant(f"{scope}/batchnorm/moving_variance")
    Path(npz_path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{npz_path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, npz_path)
