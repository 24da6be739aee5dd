"""Inception features of image sets: streamed in batches, real-set features cached on disk.

FID (Heusel et al. 2017), KID (Binkowski et al. 2018) and improved precision/recall
(Kynkäänniemi et al. 2019) all compare two sets of 2048-d pool_3 features of the FID
Inception network (see inception.py). This module produces those features:

* ``FeatureExtractor.features`` runs the network over any iterable of uint8 batches
  (nothing but the features is kept in memory) with a progress bar on stderr;
* ``real_features`` reads a training folder (or file list / TFRecords) through
  ``illustration_gan.data`` and caches the result as .npz, keyed by a hash of the files
  (relative names and contents), the image size, the image count and the weight file;
* ``generated_features`` streams a generator ``sample_fn(n, seed) -> uint8 (n, H, W, 3)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from illustration_gan.metrics.inception import FEATURE_DIM, build_fid_inception, check_fid_weights

_CACHE_FORMAT = 2  # bump when the cached content or its meaning changes


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (local paths and any tf.io.gfile scheme)."""
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_features_cache_dir() -> Path:
    from illustration_gan import cache_root

    return Path(cache_root()) / "fid_features"


class _Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, a line every 10 s otherwise)."""

    def __init__(self, total: int | None, desc: str):
        self.total, self.desc, self.done = total, desc or "features", 0
        self.start = self.last_print = time.monotonic()
        self.tty = sys.stderr.isatty()

    def update(self, n: int, final: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if not (self.tty or final or now - self.last_print >= 10):
            return
        self.last_print = now
        rate = self.done / max(now - self.start, 1e-9)
        text = f"{self.desc}: {self.done}"
        if self.total:
            eta = max(self.total - self.done, 0) / max(rate, 1e-9)
            text += f"/{self.total} ({100 * self.done / self.total:3.0f}%) eta {eta:4.0f}s"
        text += f" {rate:5.1f} img/s"
        sys.stderr.write(("\r" + text) if self.tty else text + "\n")
        if self.tty and final:
            sys.stderr.write("\n")
        sys.stderr.flush()


class FeatureExtractor:
    """The FID Inception network, built once, applied to batches of images.

    weights_path: the npz (None: resolved by ``resolve_fid_weights``; checked by ``check_fid_weights``).
    batch_size: images per network call; larger input batches are split.
    """

    def __init__(self, weights_path: str | None = None, batch_size: int = 50):
        self.weights_path = check_fid_weights(weights_path)
        self.batch_size = int(batch_size)
        self.model = build_fid_inception(self.weights_path)
        self._fingerprint: str | None = None

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def forward(images):
            return self.model(images, training=False)

        self._forward = forward

    def weights_fingerprint(self) -> str:
        """sha256 and size of the weight file (part of the real-feature cache key)."""
        if self._fingerprint is None:
            self._fingerprint = f"{file_sha256(self.weights_path)}:{os.path.getsize(self.weights_path)}"
        return self._fingerprint

    def features(self, image_batches: Iterable[np.ndarray], total: int | None = None, desc: str = "") -> np.ndarray:
        """(N, 2048) float64 features of all images in ``image_batches`` ((b, H, W, 3) RGB in [0, 255])."""
        progress = _Progress(total, desc)
        out = []
        for batch in image_batches:
            batch = np.asarray(batch)
            if batch.ndim != 4 or batch.shape[-1] != 3:
                raise ValueError(f"expected image batches of shape (b, H, W, 3), got {batch.shape}")
            for start in range(0, len(batch), self.batch_size):
                chunk = batch[start : start + self.batch_size].astype(np.float32)
                out.append(self._forward(chunk).numpy())
                progress.update(len(chunk))
        progress.update(0, final=True)
        if not out:
            return np.zeros((0, FEATURE_DIM), np.float64)
        return np.concatenate(out).astype(np.float64)


def generated_features(
    sample_fn: Callable[[int, int], np.ndarray],
    num_samples: int,
    extractor: FeatureExtractor,
    batch_size: int = 100,
    seed: int = 0,
) -> np.ndarray:
    """Features of ``num_samples`` images from ``sample_fn(n, seed)``, drawn ``batch_size`` at a time.

    Batch i is drawn with a seed derived from (seed, i) by numpy's SeedSequence, so
    evaluations with different ``seed`` values never share batches.
    """

    def batches() -> Iterator[np.ndarray]:
        for i, start in enumerate(range(0, num_samples, batch_size)):
            n = min(batch_size, num_samples - start)
            batch_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
            images = np.asarray(sample_fn(n, batch_seed))
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != n or images.shape[-1] != 3:
                raise ValueError(
                    f"sample_fn({n}, seed) must return uint8 (n, H, W, 3); got {images.dtype} {images.shape}"
                )
            yield images

    return extractor.features(batches(), total=num_samples, desc="generated images")


def _input_files(path_or_files: str | Sequence[str]) -> tuple[list[str], str, bool]:
    """The files behind an evaluation input, the root their names are taken relative to,
    and whether they are TFRecord shards (which hold many images each)."""
    from illustration_gan import data

    if isinstance(path_or_files, (str, os.PathLike)):
        path = os.fspath(path_or_files)
        shards = data.list_tfrecords(path)
        files = shards or data.list_image_files(path)
        root = path if tf.io.gfile.isdir(path) else os.path.dirname(path)
        return files, root, bool(shards)
    files = sorted(os.fspath(f) for f in path_or_files)
    root = os.path.commonpath([os.path.dirname(f) for f in files]) if files else ""
    return files, root, False


def _cache_key(files: list[str], root: str, image_size: int, max_images: int | None, weights: str) -> str:
    # Contents, not modification times: a dataset copied or synced again (a new machine, a
    # container start) keeps its features. Hashing is far cheaper than the network: the 6,000
    # shared faces (47 MB) hash in 0.2 s against about 10 minutes of Inception on one core.
    listing = [[os.path.relpath(f, root) if root else f, file_sha256(f)] for f in files]
    description = {
        "format": _CACHE_FORMAT,
        "files": listing,
        "image_size": image_size,
        "max_images": max_images,
        "weights": weights,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def real_features(
    path_or_files: str | Sequence[str],
    image_size: int,
    max_images: int | None,
    extractor: FeatureExtractor,
    cache_dir: str | None = None,
) -> np.ndarray:
    """Features of (at most ``max_images`` of) the real images, read and resized as in training.

    Images come from ``illustration_gan.data.image_batches_uint8`` (a folder, TFRecords, or a
    list of files, which is sorted first); undecodable files are skipped. The result is
    cached under ``cache_dir`` (default ~/.cache/illustration_gan/fid_features), so evaluating
    many checkpoints against the same data computes it once.
    """
    from illustration_gan import data

    files, root, records = _input_files(path_or_files)
    if not files:
        raise FileNotFoundError(f"no images found in {path_or_files}")
    key = _cache_key(files, root, image_size, max_images, extractor.weights_fingerprint())
    cache = Path(cache_dir) if cache_dir else default_features_cache_dir()
    cache_file = cache / f"real_{image_size}px_{key[:20]}.npz"
    if cache_file.is_file():
        with np.load(cache_file) as stored:
            if str(stored["key"]) == key:
                return stored["features"].astype(np.float64)

    source = os.fspath(path_or_files) if isinstance(path_or_files, (str, os.PathLike)) else files
    if records:
        expected = max_images
    else:
        expected = len(files) if max_images is None else min(max_images, len(files))
    batches = data.image_batches_uint8(source, image_size, extractor.batch_size, limit=max_images)
    features = extractor.features(batches, total=expected, desc=f"real images ({image_size}px)")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(cache_file.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, features=features.astype(np.float32), key=np.array(key))  # pool_3 values are float32
    os.replace(tmp, cache_file)
    return features
