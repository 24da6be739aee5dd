"""Images in: a folder of images or TFRecord shards to a `tf.data.Dataset` in [-1, 1].

Every image goes through one decoder (`decode_to_rgb`): grayscale, gray+alpha,
RGBA (composited on white), CMYK JPEG, 16-bit PNG, WebP and BMP all become
uint8 RGB; non-square images are centre-cropped to a square (or, with
`fit="stretch"`, stretched whole) and resized with area interpolation. Files TensorFlow cannot decode are found once, up front,
by decoding everything with `ignore_errors` and noting which indices vanished,
so a bad file is named in a warning instead of stopping training halfway.

TFRecords hold `tf.train.Example`s with the encoded image in `image/encoded`
(what `data_tools/crop_faces.py --format tfrecord` writes); paths may be on
any filesystem `tf.io.gfile` reads (local, gs://, s3:// with the plugin).
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from illustration_gan import MAX_MEGAPIXELS, UserError

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
    skipped: tuple[str, ...] = ()  # every input left out (or "record N" for TFRecords)
    path: str = ""  # what was scanned
    # Why inputs were left out: {"undecodable", "too_large", "repeated_link", "non_utf8_name": count}.
    skipped_counts: dict = dataclasses.field(default_factory=dict, compare=False)
    max_megapixels: float = MAX_MEGAPIXELS  # the size cap `scan` applied


@dataclasses.dataclass
class _Listing:
    files: list[str] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (shown path, reason)


def _is_remote(path: str) -> bool:
    return "://" in path


def _shown(path: str) -> str:
    """A path as text that prints and serialises: undecodable bytes of a name become \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # os.listdir gave undecodable bytes as surrogates
        return False


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _list_local(path: str) -> _Listing:
    """Walks a local folder, following each symlink at most once per real path.

    A link back up the tree (`loop -> .`) or a second name for a folder or file
    already listed is skipped as "repeated_link"; a name that is not valid UTF-8
    (which TensorFlow's file functions cannot take) is skipped as "non_utf8_name".
    """
    out = _Listing()
    seen: set[str] = set()  # real paths of the folders and files taken
    pending, linked_folders, linked_files = [path], [], []
    while pending or linked_folders:
        if not pending:  # real folders first, so a link never hides the folder it points to
            pending.append(linked_folders.pop(0))
        folder = pending.pop()
        real = os.path.realpath(folder)
        if real in seen:
            out.skipped.append((_shown(folder), "repeated_link"))
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            logging.warning("skipping folder %s: %s", _shown(folder), error.strerror or error)
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows links
            except OSError:
                is_dir = False
            if not is_dir and not _is_image_name(entry.name):
                continue
            if not _utf8(entry.name):
                out.skipped.append((_shown(entry.path), "non_utf8_name"))
            elif entry.is_symlink():
                (linked_folders if is_dir else linked_files).append(entry.path)
            elif is_dir:
                subfolders.append(entry.path)
            else:
                seen.add(os.path.realpath(entry.path))
                out.files.append(entry.path)
        pending.extend(reversed(subfolders))  # depth-first, in name order
    for link in linked_files:
        real = os.path.realpath(link)
        if real in seen:
            out.skipped.append((_shown(link), "repeated_link"))
        else:
            seen.add(real)
            out.files.append(link)
    out.files.sort()
    return out


def list_image_files(path: str) -> list[str]:
    """All image files below `path` (recursive, sorted, hidden folders skipped).

    Local folders: symlinks are followed at most once per real path and names that
    are not UTF-8 are left out (`scan` reports both); other filesystems: tf.io.gfile.
    """
    return _list_files(path).files


def _list_files(path: str) -> _Listing:
    if not _is_remote(path):
        return _list_local(path)
    out = _Listing()
    for root, dirs, files in tf.io.gfile.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.files += [os.path.join(root, name) for name in files if _is_image_name(name)]
    out.files.sort()
    return out


def image_size_from_header(path: str) -> tuple[int, int] | None:
    """(width, height) read from the file's header without decoding it, or None if unreadable."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opener = tf.io.gfile.GFile(path, "rb") if _is_remote(path) else open(path, "rb")
            with opener as f, Image.open(f) as image:
                return image.size
    except Image.DecompressionBombError:  # over Pillow's own limit (~179 megapixels)
        return (2 * Image.MAX_IMAGE_PIXELS + 1, 1) if Image.MAX_IMAGE_PIXELS else None
    except Exception:  # noqa: BLE001  (not an image Pillow knows: TensorFlow's decoder decides)
        return None


def _too_large(files: Sequence[str], max_megapixels: float) -> dict[str, tuple[int, int]]:
    """The files whose header declares more than `max_megapixels`, with their sizes."""
    limit = max_megapixels * 1e6
    large = {}
    for path in files:
        size = image_size_from_header(path)
        if size is not None and size[0] * size[1] > limit:
            large[path] = size
    return large


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


def decode_to_rgb(encoded: tf.Tensor, image_size: int, fit: str = "crop") -> tf.Tensor:
    """Encoded bytes -> uint8 RGB (image_size, image_size, 3): the centre square (`fit="crop"`) or the
    whole image stretched (`"stretch"`, as jhayes14/GAN's `cv2.resize(img, (64, 64))`) resized."""
    image = tf.io.decode_image(encoded, channels=0, dtype=tf.uint8, expand_animations=False)
    image = tf.cast(image, tf.float32)
    channels = tf.shape(image)[-1]
    color = tf.cond(channels >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))
    has_alpha = tf.logical_or(tf.equal(channels, 2), tf.equal(channels, 4))
    alpha = tf.cond(has_alpha, lambda: image[..., -1:] / 255.0, lambda: tf.ones_like(image[..., :1]))
    rgb = color * alpha + 255.0 * (1.0 - alpha)  # transparent areas become white
    height, width = tf.shape(rgb)[0], tf.shape(rgb)[1]
    side = tf.minimum(height, width)
    if fit == "crop":
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


def _header_pixels(encoded: bytes) -> int:
    """Pixels an encoded image declares in its header (-1: no header Pillow reads)."""
    import io

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(encoded)) as image:
                return image.size[0] * image.size[1]
    except Image.DecompressionBombError:
        return 2**62
    except Exception:  # noqa: BLE001
        return -1


def _within_cap(encoded: tf.Tensor, max_megapixels: float) -> tf.Tensor:
    pixels = tf.py_function(lambda e: _header_pixels(e.numpy()), [encoded], tf.int64)
    return tf.cast(pixels, tf.float64) <= max_megapixels * 1e6


def _decodable_indices(kind: str, files: Sequence[str], max_megapixels: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Indices of inputs that decode, of records over the size cap, and the number of inputs.

    Files over the cap are already left out by `scan`; records are checked here, on
    their header, before anything is decoded.
    """
    ds = _encoded_images(kind, files).enumerate()
    large = np.zeros(0, np.int64)
    if kind == "tfrecord":
        checked = ds.map(lambda i, enc: (i, _within_cap(enc, max_megapixels)))
        large = np.array([int(i) for i, ok in checked.as_numpy_iterator() if not ok], dtype=np.int64)
        ds = ds.filter(lambda i, enc: _within_cap(enc, max_megapixels))
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
    return indices, large, total


def _readable_shards(shards: Sequence[str], left_out: list) -> list[str]:
    """The shards whose records all read; the others (cut short, or not TFRecord at all: a
    DataLossError) are warned about and added to `left_out` as "damaged_shard"."""
    readable = []
    for shard in shards:
        try:
            _records([shard]).reduce(np.int64(0), lambda count, _: count + 1)
            readable.append(shard)
        except tf.errors.OpError as error:
            reason = " ".join(re.sub(r"\{\{.*?\}\}|\[Op:\w+\]|name:", "", str(error)).split())[:160]  # no op names
            logging.warning("skipping %s: not a readable TFRecord shard (%s: %s)", shard, type(error).__name__, reason)
            left_out.append((shard, "damaged_shard"))
    return readable


def scan(path: str, max_megapixels: float = MAX_MEGAPIXELS) -> ImageSource:
    """Finds the usable images under `path`, warning about (and counting) what is left out.

    Left out, each named in a warning and counted in `skipped_counts`: files that do not
    decode ("undecodable"), images whose header declares more than `max_megapixels`
    ("too_large", checked before decoding: a decompression-bomb guard, the cropper's cap
    by default), a second path to a folder or file already seen through a symlink
    ("repeated_link", so `loop -> .` is followed once), names that are not UTF-8
    ("non_utf8_name") and TFRecord shards that do not read to their end ("damaged_shard").
    """
    if not path:
        raise UserError("no --path given")
    if not tf.io.gfile.exists(path) and not any(ch in path for ch in "*?["):
        raise UserError(f"--path {path} does not exist")
    name = os.path.basename(os.path.normpath(path.split("*")[0])) or "data"
    left_out: list[tuple[str, str]] = []
    shards = list_tfrecords(path)
    if shards:
        kind, files = "tfrecord", _readable_shards(shards, left_out)
    else:
        listing = _list_files(path)
        kind, files = "files", listing.files
        left_out += listing.skipped
        for shown, reason in listing.skipped:
            if reason == "repeated_link":
                logging.warning("skipping %s: a symlink to a folder or file already read", shown)
            else:
                logging.warning("skipping %s: its name is not UTF-8 (bytes shown as \\xNN); rename it to use it", shown)
        large = _too_large(files, max_megapixels)
        for file, (width, height) in large.items():
            logging.warning(
                "skipping %s: %dx%d = %.1f megapixels > --max_megapixels %g (decompression-bomb guard)",
                file, width, height, width * height / 1e6, max_megapixels,
            )
        left_out += [(f, "too_large") for f in large]
        files = [f for f in files if f not in large]
    if not files:
        if left_out:
            raise UserError(f"no usable image in {path}: all {len(left_out)} images were left out (see the warnings)")
        raise UserError(
            f"no images in {path}: expected {', '.join(IMAGE_EXTENSIONS)} files (searched recursively) or TFRecord shards"
        )
    good, large_records, total = _decodable_indices(kind, files, max_megapixels)
    good_set, large_set = set(good.tolist()), set(large_records.tolist())
    if kind == "files":
        undecodable = [f for i, f in enumerate(files) if i not in good_set]
        usable = tuple(files[i] for i in good)
    else:
        for i in large_records:
            logging.warning("skipping record %d: over --max_megapixels %g (decompression-bomb guard)", i, max_megapixels)
        left_out += [(f"record {i}", "too_large") for i in large_records]
        undecodable = [f"record {i}" for i in range(total) if i not in good_set and i not in large_set]
        usable = tuple(files)
    for bad in undecodable:
        logging.warning("skipping %s: not a decodable image", bad)
    left_out += [(bad, "undecodable") for bad in undecodable]
    counts: dict[str, int] = {}
    for _, reason in left_out:
        counts[reason] = counts.get(reason, 0) + 1
    if not len(good):
        why = f"all {total} files failed to decode" if set(counts) == {"undecodable"} else (
            f"all {len(left_out)} inputs were left out ({', '.join(f'{n} {r}' for r, n in sorted(counts.items()))})"
        )
        raise UserError(f"no usable image in {path}: {why}")
    if left_out:
        logging.warning(
            "left out %d inputs (%s); using %d",
            len(left_out), ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())), len(good),
        )
    return ImageSource(
        name=name, kind=kind, files=usable, num_images=len(good), skipped=tuple(f for f, _ in left_out),
        path=path, skipped_counts=counts, max_megapixels=max_megapixels,
    )


class _Vanished:
    """Names the files that no longer decode when the pipeline reaches them (deleted or replaced
    after `scan`), found as gaps in the indices of the images that came through: each is skipped
    with a warning, once, and counted, as `scan` skips broken files."""

    def __init__(self, files: Sequence[str]):
        self.files, self.next, self.skipped = files, 0, set()

    def __call__(self, index) -> np.int64:
        index = int(index)
        if index < self.next:  # the files are read again (no cache): from the start
            self.next = 0
        for gone in range(self.next, index):
            if gone not in self.skipped:
                self.skipped.add(gone)
                logging.warning("skipping %s: it no longer reads as an image (deleted or replaced since the scan); "
                                "%d skipped so far", _shown(self.files[gone]), len(self.skipped))
        self.next = index + 1
        return np.int64(index)


def _file_images(files: Sequence[str], image_size: int, fit: str) -> tf.data.Dataset:
    """uint8 images of `files` in order, skipping (by `_Vanished`) those that no longer read."""
    vanished = _Vanished(files)
    images = tf.data.Dataset.from_tensor_slices(list(files)).enumerate().map(
        lambda i, f: (i, decode_to_rgb(tf.io.read_file(f), image_size, fit)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    ).ignore_errors()
    end = tf.data.Dataset.from_tensors((np.int64(len(files)), tf.zeros([image_size, image_size, 3], tf.uint8)))
    checked = images.concatenate(end).map(  # the end marker reveals files gone from the end of the list
        lambda i, image: (tf.ensure_shape(tf.py_function(vanished, [i], tf.int64), []), image))
    count = len(files)
    return checked.filter(lambda index, _: index < count).map(lambda _, image: image)


def _uint8_images(source: ImageSource, image_size: int, fit: str = "crop") -> tf.data.Dataset:
    if source.kind == "files":
        return _file_images(source.files, image_size, fit)
    encoded = _encoded_images(source.kind, source.files)
    if source.kind == "tfrecord" and source.skipped_counts.get("too_large"):
        encoded = encoded.filter(lambda enc: _within_cap(enc, source.max_megapixels))
    ds = encoded.map(lambda enc: decode_to_rgb(enc, image_size, fit), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.ignore_errors() if source.skipped else ds  # bad records can only be skipped here


def training_dataset(
    source: ImageSource,
    image_size: int,
    batch_size: int,
    seed: int,
    input_context: tf.distribute.InputContext | None = None,
    cache: bool = True,
    flip: bool = True,
    fit: str = "crop",
) -> tf.data.Dataset:
    """Endless shuffled batches in [-1, 1] for one input pipeline, flipped at random unless `flip` is False.

    Under a distribution strategy, `input_context` shards the inputs per worker and
    `batch_size` (global) becomes the per-replica batch size. The dataset repeats
    forever; the training loop takes `steps_per_epoch` batches per epoch, so every
    worker runs the same number of steps even when shards differ in size.
    """
    if input_context is not None:
        per_replica = input_context.get_per_replica_batch_size(batch_size)
    else:
        per_replica = batch_size
    ds = _uint8_images(source, image_size, fit)
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if cache:
        ds = ds.cache()  # uint8 after resize: 12 KiB per 64x64 image
    ds = ds.shuffle(min(source.num_images, 10_000), seed=seed, reshuffle_each_iteration=True).repeat()
    # The flip is keyed by the element's position, not drawn from a stateful op: in a parallel map that
    # op hands out its draws in whatever order the threads run, so the same seed flipped other images.
    ds = ds.enumerate().map(
        lambda i, img: tf.image.stateless_random_flip_left_right(
            tf.cast(img, tf.float32) / 127.5 - 1.0, seed=tf.stack([tf.constant(seed, tf.int64), i])
        ) if flip else tf.cast(img, tf.float32) / 127.5 - 1.0,
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
        large = _too_large(files, MAX_MEGAPIXELS)
        for file in large:
            logging.warning("skipping %s: over %g megapixels (decompression-bomb guard)", file, MAX_MEGAPIXELS)
        files = [f for f in files if f not in large]
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
