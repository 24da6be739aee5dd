"""Images in: a folder of images or TFRecord shards to a `tf.data.Dataset` in [-1, 1].

Every image goes through one decoder (`decode_to_rgb`): grayscale, gray+alpha,
RGBA (composited on white), CMYK JPEG, 16-bit PNG, WebP and BMP all become
uint8 RGB; non-square images are centre-cropped to a square and resized with
area interpolation. Files TensorFlow cannot decode are found once, up front,
by decoding everything with `ignore_errors` and noting which indices vanished,
so a bad file is named in a warning instead of stopping training halfway.

TFRecords hold `tf.train.Example`s with the encoded image in `image/encoded`
(what `data_tools/crop_faces.py --format tfrecord` writes); paths may be on
any filesystem `tf.io.gfile` reads (local, gs://, s3:// with the plugin).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from illustration_gan import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
TFRECORD_PATTERNS = ("*.tfrecord", "*.tfrecords", "*.tfrecord.gz")
TFRECORD_IMAGE_KEY = "image/encoded"


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """The usable inputs of a dataset, found once before training."""

    name: str  # short name for run folders, e.g. "faces"
    kind: str  # "files" | "tfrecord"
    files: tuple[str, ...]  # image files, or TFRecord shard files
    num_images: int
    skipped: tuple[str, ...] = ()  # undecodable files (or "record N" for TFRecords)
    path: str = ""  # what was scanned


def list_image_files(path: str) -> list[str]:
    """All image files below `path` (recursive, sorted, hidden folders skipped)."""
    found = []
    for root, dirs, files in tf.io.gfile.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                found.append(os.path.join(root, name))
    return sorted(found)


def list_tfrecords(path: str) -> list[str]:
    """TFRecord shards named by a glob, or found directly inside a folder."""
    if any(ch in path for ch in "*?["):
        return sorted(tf.io.gfile.glob(path))
    if tf.io.gfile.isdir(path):
        shards = []
        for pattern in TFRECORD_PATTERNS:
            shards += tf.io.gfile.glob(os.path.join(path, pattern))
        return sorted(set(shards))
    if path.endswith((".tfrecord", ".tfrecords", ".tfrecord.gz")):
        return [path]
    return []


def decode_to_rgb(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded bytes -> uint8 RGB (image_size, image_size, 3)."""
    image = tf.io.decode_image(encoded, channels=0, dtype=tf.uint8, expand_animations=False)
    image = tf.cast(image, tf.float32)
    channels = tf.shape(image)[-1]
    color = tf.cond(channels >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))
    has_alpha = tf.logical_or(tf.equal(channels, 2), tf.equal(channels, 4))
    alpha = tf.cond(has_alpha, lambda: image[..., -1:] / 255.0, lambda: tf.ones_like(image[..., :1]))
    rgb = color * alpha + 255.0 * (1.0 - alpha)  # transparent areas become white
    height, width = tf.shape(rgb)[0], tf.shape(rgb)[1]
    side = tf.minimum(height, width)
    rgb = tf.image.crop_to_bounding_box(rgb, (height - side) // 2, (width - side) // 2, side, side)
    rgb = tf.image.resize(rgb, (image_size, image_size), method="area")
    return tf.cast(tf.clip_by_value(tf.round(rgb), 0, 255), tf.uint8)


def _records(files: Sequence[str]) -> tf.data.TFRecordDataset:
    compression = "GZIP" if files and files[0].endswith(".gz") else None
    return tf.data.TFRecordDataset(list(files), compression_type=compression)


def _encoded_images(source_kind: str, files: Sequence[str]) -> tf.data.Dataset:
    if source_kind == "files":
        return tf.data.Dataset.from_tensor_slices(list(files)).map(
            tf.io.read_file, num_parallel_calls=tf.data.AUTOTUNE
        )
    records = _records(files)
    spec = {TFRECORD_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
    return records.map(
        lambda r: tf.io.parse_single_example(r, spec)[TFRECORD_IMAGE_KEY],
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _decodable_indices(kind: str, files: Sequence[str]) -> tuple[np.ndarray, int]:
    """Indices of inputs that decode, and the total number of inputs."""
    ds = _encoded_images(kind, files).enumerate()
    ds = ds.map(
        lambda i, enc: (i, tf.shape(decode_to_rgb(enc, 8))[0]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    ).ignore_errors()
    indices = np.array([int(i) for i, _ in ds.as_numpy_iterator()], dtype=np.int64)
    if kind == "files":
        total = len(files)
    else:
        total = sum(1 for _ in _records(files))
    return indices, total


def scan(path: str) -> ImageSource:
    """Finds the usable images under `path`, warning about (and counting) bad files."""
    if not path:
        raise UserError("no --path given")
    if not tf.io.gfile.exists(path) and not any(ch in path for ch in "*?["):
        raise UserError(f"--path {path} does not exist")
    name = os.path.basename(os.path.normpath(path.split("*")[0])) or "data"
    shards = list_tfrecords(path)
    if shards:
        kind, files = "tfrecord", shards
    else:
        kind, files = "files", list_image_files(path)
    if not files:
        raise UserError(
            f"no images in {path}: expected {', '.join(IMAGE_EXTENSIONS)} files (searched recursively) or TFRecord shards"
        )
    good, total = _decodable_indices(kind, files)
    good_set = set(good.tolist())
    if kind == "files":
        skipped = tuple(f for i, f in enumerate(files) if i not in good_set)
        usable = tuple(files[i] for i in good)
    else:
        skipped = tuple(f"record {i}" for i in range(total) if i not in good_set)
        usable = tuple(files)
    for bad in skipped:
        logging.warning("skipping %s: not a decodable image", bad)
    if not len(good):
        raise UserError(f"no usable image in {path}: all {total} files failed to decode")
    if skipped:
        logging.warning("skipped %d of %d inputs that could not be decoded", len(skipped), total)
    return ImageSource(name=name, kind=kind, files=usable, num_images=len(good), skipped=skipped, path=path)


def _uint8_images(source: ImageSource, image_size: int) -> tf.data.Dataset:
    ds = _encoded_images(source.kind, source.files).map(
        lambda enc: decode_to_rgb(enc, image_size), num_parallel_calls=tf.data.AUTOTUNE
    )
    # Bad files are already left out of a folder's list; bad records can only be skipped here.
    return ds.ignore_errors() if source.skipped and source.kind == "tfrecord" else ds


def training_dataset(
    source: ImageSource,
    image_size: int,
    batch_size: int,
    seed: int,
    input_context: tf.distribute.InputContext | None = None,
    cache: bool = True,
) -> tf.data.Dataset:
    """Endless shuffled, flipped batches in [-1, 1] for one input pipeline.

    Under a distribution strategy, `input_context` shards the inputs per worker and
    `batch_size` (global) becomes the per-replica batch size. The dataset repeats
    forever; the training loop takes `steps_per_epoch` batches per epoch, so every
    worker runs the same number of steps even when shards differ in size.
    """
    if input_context is not None:
        per_replica = input_context.get_per_replica_batch_size(batch_size)
    else:
        per_replica = batch_size
    ds = _uint8_images(source, image_size)
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if cache:
        ds = ds.cache()  # uint8 after resize: 12 KiB per 64x64 image
    ds = ds.shuffle(min(source.num_images, 10_000), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.map(
        lambda img: tf.image.random_flip_left_right(tf.cast(img, tf.float32) / 127.5 - 1.0, seed=seed),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def image_batches_uint8(
    path_or_files: str | Sequence[str],
    image_size: int,
    batch_size: int,
    limit: int | None = None,
) -> Iterator[np.ndarray]:
    """Decoded uint8 RGB batches (b, size, size, 3) in file order, for evaluation."""
    if isinstance(path_or_files, str):
        source = scan(path_or_files)
    else:
        files = list(path_or_files)
        if not files:
            raise UserError("no image files given")
        source = ImageSource(name="files", kind="files", files=tuple(files), num_images=len(files))
    ds = _uint8_images(source, image_size).ignore_errors()
    if limit is not None:
        ds = ds.take(limit)
    for batch in ds.batch(batch_size).prefetch(2).as_numpy_iterator():
        yield batch


def to_uint8(images: tf.Tensor | np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] -> uint8 RGB."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
