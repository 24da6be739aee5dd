"""What the explorer page shows, without HTTP: a run's generator, its training images and its files.

A face's identity is its seed: face `s` is the generator's image of
`sampler.latent_for_seed(s)`, so a seed typed into the page (or into a URL) always
gives the same face. The generator runs under one lock (the server is threaded);
rendered PNGs are kept in a small LRU cache, so the page's per-face image requests
after /api/faces cost nothing. Training images for the nearest-neighbour check are
decoded once, on first use, resized to the generator's resolution (at most
MAX_DATASET_IMAGES).

Arguments are trusted here: `illustration_gan.serve.app` checks every request first.
What cannot be shown (no training images, a file the run has not written yet) raises
`Unavailable` with a message for the user.
"""

from __future__ import annotations

import collections
import glob
import io
import json
import logging
import math
import os
import threading
import time
from typing import Callable

import numpy as np

from illustration_gan import UserError, run_folder

MAX_SEED = 2**31 - 1
MAX_DATASET_IMAGES = 10_000
GIF_SIDE = 256  # GIF frames are scaled up (nearest neighbour) to about this many pixels
FID_FILE = "metric-fid.jsonl"
LATEST_GRID = "latest_grid.png"  # the newest fakes_*.png
RUN_FILES = {"losses.png": "losses.png", "progress.gif": "progress.gif"}  # plus LATEST_GRID

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """Something the run cannot show (yet); the message says why."""


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def read_jsonl_tolerant(path: str) -> list[dict]:
    """JSON lines, skipping a half-written last line (training may be appending right now)."""
    records = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
    except OSError:
        pass
    return records


# ----------------------------------------------------------------------------- dataset


def resolve_dataset_path(run_dir: str) -> str | None:
    """The run's training images, if they are still where training read them.

    training_options.json's `config.path`, else the scanned `dataset.path` (for a run on
    the built-in toy faces: their cached folder). Only an existing local path, or a
    remote one (gs://...) or a glob, is returned; nothing is written. None if not found.
    """
    try:
        options = run_folder.read_json(os.path.join(run_dir, run_folder.OPTIONS_FILE))
    except (OSError, ValueError):
        return None
    dataset = options.get("dataset") or {}
    candidates = [(options.get("config") or {}).get("path") or "", dataset.get("path") or ""]
    if dataset.get("path") == "toy_faces":  # older runs recorded only that the toy faces were used
        from illustration_gan import toy_faces

        candidates.append(os.path.join(
            toy_faces.default_root(), f"toy_faces-v{toy_faces.VERSION}-n{dataset.get('num_images', 4096)}-s0"))
    for path in candidates:
        if path and ("://" in path or any(ch in path for ch in "*?[") or os.path.exists(path)):
            return path
    return None


class TrainingImages:
    """The dataset's images at the generator's size, decoded once on first use (thread-safe)."""

    def __init__(self, path: str, image_size: int, limit: int = MAX_DATASET_IMAGES):
        self.path = path
        self.image_size = image_size
        self.limit = limit
        self._lock = threading.Lock()
        self.loaded = False
        self.images: np.ndarray | None = None  # (n, size, size, 3) uint8
        self.names: list[str] = []  # display names (file names), by index
        self.total = 0  # inputs found (before the limit)
        self.error: str | None = None

    @property
    def label(self) -> str:
        return os.path.basename(os.path.normpath(self.path.split("*")[0])) or self.path

    def load(self) -> "TrainingImages":
        with self._lock:
            if not self.loaded:
                started = time.perf_counter()
                try:
                    self._load()
                except Exception as error:  # a dataset problem must not break the rest of the page
                    log.warning("cannot load training images from %s: %s", self.path, error)
                    self.error = f"the training images ({self.label}) could not be read"
                if self.images is not None:
                    log.info("nearest neighbours: %d training images from %s decoded in %.1fs",
                             len(self.images), self.path, time.perf_counter() - started)
                self.loaded = True
        return self

    def _dataset(self):
        """(index, image) pairs of the folder's files or of the TFRecord shards, and the files' names."""
        import tensorflow as tf

        from illustration_gan import data

        size = self.image_size
        files = data.list_image_files(self.path) if tf.io.gfile.isdir(self.path) else []
        if files:
            self.total = len(files)
            files = files[: self.limit]
            names = [os.path.relpath(f, self.path) if not self.path.startswith(("gs://", "s3://")) else f for f in files]
            ds = tf.data.Dataset.from_tensor_slices(files).enumerate()
            return ds.map(lambda i, f: (i, data.decode_to_rgb(tf.io.read_file(f), size)),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), names
        shards = data.list_tfrecords(self.path)
        if not shards:
            return None, None
        spec = {data.TFRECORD_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
        records = tf.data.TFRecordDataset(shards, compression_type="GZIP" if shards[0].endswith(".gz") else None)
        return records.take(self.limit).enumerate().map(
            lambda i, r: (i, data.decode_to_rgb(tf.io.parse_single_example(r, spec)[data.TFRECORD_IMAGE_KEY], size)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), None

    def _load(self) -> None:
        ds, names = self._dataset()
        if ds is None:
            self.error = f"no images found in the training folder ({self.label})"
            return
        images, kept = [], []
        for index, image in ds.ignore_errors().as_numpy_iterator():
            kept.append(int(index))
            images.append(image)
        if not images:
            self.error = f"none of the training images ({self.label}) could be decoded"
            return
        self.images = np.stack(images)
        self.names = [names[i] if names else f"record {i}" for i in kept]
        if names is None:
            self.total = len(kept)

    def nearest(self, image: np.ndarray, k: int) -> list[dict]:
        from illustration_gan.metrics import nearest_neighbours

        indices = nearest_neighbours(image[None], self.images, k=k, metric="mse")[0]
        diffs = self.images[indices].astype(np.float32) - image[None].astype(np.float32)
        mse = (diffs**2).reshape(len(indices), -1).mean(axis=1)
        return [
            {"index": int(i), "name": self.names[int(i)], "mse": round(float(e), 2), "url": f"/api/dataset/{int(i)}.png"}
            for i, e in zip(indices, mse)
        ]


# ----------------------------------------------------------------------------- the explorer


class Explorer:
    """The run and its generator, shared by all requests.

    dataset_path: the training images for the nearest-neighbour check; None = the run's
    own (see resolve_dataset_path); "" = none. max_faces: the most faces one request may
    ask for. Raises UserError if `run_dir` is not a run folder or has no generator yet.
    """

    def __init__(self, run_dir: str, dataset_path: str | None = None, max_faces: int = 256, best: bool = False):
        from illustration_gan import generate

        if max_faces < 1:
            raise ValueError("max_faces must be at least 1")
        if not os.path.isdir(run_dir) or not os.path.exists(os.path.join(run_dir, run_folder.OPTIONS_FILE)):
            raise UserError(f"{run_dir} is not a run folder (no {run_folder.OPTIONS_FILE})")
        self.run_dir = os.path.abspath(run_dir)
        self.name = os.path.basename(self.run_dir)
        self.max_faces = max_faces
        self.sampler = generate.load_sampler(self.run_dir, best=best)  # best: generator-best.keras
        distribution = self.sampler.generator.model_config.z_distribution
        self.default_mode = "linear" if distribution == "uniform" else "slerp"
        self._generator_lock = threading.Lock()
        self._cache: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = max(1024, 4 * max_faces)
        if dataset_path is None:
            dataset_path = resolve_dataset_path(self.run_dir)
        self.dataset = TrainingImages(dataset_path, self.sampler.image_size) if dataset_path else None

    # ---- the generator: one call at a time

    def latents(self, seeds: list[int]) -> np.ndarray:
        with self._generator_lock:
            return np.stack([self.sampler.latent_for_seed(s) for s in seeds]).astype(np.float32)

    def render(self, z: np.ndarray) -> np.ndarray:
        with self._generator_lock:
            return self.sampler.images_from_latents(np.asarray(z, np.float32))

    def warm_up(self) -> None:
        """Traces the forward pass (for one and for several faces) before the first request."""
        self.render(self.latents([0, 1]))
        self.render(self.latents([0]))

    # ---- the PNG cache

    def cached(self, key: tuple, make: Callable[[], bytes]) -> bytes:
        """The cached bytes for `key`, made (outside the cache's lock) and kept if missing."""
        with self._cache_lock:
            body = self._cache.get(key)
            if body is not None:
                self._cache.move_to_end(key)
                return body
        body = make()
        with self._cache_lock:
            self._cache[key] = body
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return body

    # ---- faces

    def face_images(self, seeds: list[int]) -> np.ndarray:
        return self.render(self.latents(seeds))

    def face_pngs(self, seeds: list[int]) -> list[bytes]:
        """PNGs of the faces, generating the ones not cached in one batch."""
        with self._cache_lock:
            missing = sorted({s for s in seeds if ("face", s) not in self._cache})
        made = dict(zip(missing, self.face_images(missing))) if missing else {}
        return [self.cached(("face", s), lambda s=s: png_bytes(made[s] if s in made else self.face_images([s])[0]))
                for s in seeds]

    def grid_png(self, seed: int, count: int) -> bytes:
        return png_bytes(run_folder.image_grid(self.face_images(list(range(seed, seed + count)))))

    # ---- nearest training images

    def training_images(self) -> TrainingImages:
        """The decoded training images; Unavailable if there are none."""
        if self.dataset is None:
            raise Unavailable("no training images for this run: start the server with --path pointing to them")
        dataset = self.dataset.load()
        if dataset.images is None:
            raise Unavailable(f"nearest neighbours unavailable: {dataset.error}")
        return dataset

    def nearest(self, seed: int, k: int) -> dict:
        dataset = self.training_images()
        (image,) = self.face_images([seed])
        return {"seed": seed, "k": k, "searched": len(dataset.images), "total": dataset.total,
                "metric": "pixel mean squared error", "neighbours": dataset.nearest(image, k)}

    def dataset_png(self, index: int) -> bytes:
        images = self.training_images().images
        return self.cached(("dataset", index), lambda: png_bytes(images[index]))

    # ---- interpolation

    def interpolated_latents(self, a: int, b: int, ts: np.ndarray, mode: str) -> np.ndarray:
        """z between faces a and b at each t in `ts`: along the great circle ("slerp") or the chord ("linear")."""
        za, zb = self.latents([a, b]).astype(np.float64)
        ts = np.asarray(ts, np.float64)[:, None]
        if mode == "slerp":
            cos = np.dot(za, zb) / max(np.linalg.norm(za) * np.linalg.norm(zb), 1e-12)
            omega = math.acos(min(1.0, max(-1.0, cos)))
            if math.sin(omega) > 1e-6:
                return (np.sin((1 - ts) * omega) * za + np.sin(ts * omega) * zb) / math.sin(omega)
        return (1 - ts) * za + ts * zb

    def interpolation_png(self, a: int, b: int, t: float, mode: str) -> bytes:
        def make() -> bytes:
            (image,) = self.render(self.interpolated_latents(a, b, np.array([t]), mode))
            return png_bytes(image)

        return self.cached(("frame", a, b, round(t, 6), mode), make)

    def interpolation_gif(self, a: int, b: int, steps: int, mode: str) -> bytes:
        """The animation a -> b -> a in `steps` frames each way, lingering on a and on b."""
        from PIL import Image

        images = self.render(self.interpolated_latents(a, b, np.linspace(0.0, 1.0, steps), mode))
        scale = max(1, GIF_SIDE // self.sampler.image_size)
        frames = [Image.fromarray(im).resize((im.shape[1] * scale, im.shape[0] * scale), Image.NEAREST) for im in images]
        frames = frames + frames[-2:0:-1]  # there and back: a seamless loop
        durations = [60] * len(frames)
        durations[0] = durations[steps - 1] = 600
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
        return buffer.getvalue()

    # ---- the run folder

    def run_file(self, name: str) -> str:
        """Only fixed names, mapped to fixed files of the run folder; Unavailable otherwise."""
        path = None
        if name == LATEST_GRID:
            grids = sorted(glob.glob(os.path.join(glob.escape(self.run_dir), "fakes_*.png")))
            path = grids[-1] if grids else None
        elif name in RUN_FILES and os.path.isfile(os.path.join(self.run_dir, RUN_FILES[name])):
            path = os.path.join(self.run_dir, RUN_FILES[name])
        if path is None:
            raise Unavailable(f"the run has no {name[:80]} (served: {LATEST_GRID}, {', '.join(RUN_FILES)})")
        return path

    def _has(self, name: str) -> bool:
        try:
            return bool(self.run_file(name))
        except Unavailable:
            return False

    def fid_values(self, stats: list[dict]) -> list[dict]:
        """The newest value of every fid* key, from metric-fid.jsonl and stats.jsonl."""
        newest: dict[str, dict] = {}
        fid_records = read_jsonl_tolerant(os.path.join(self.run_dir, FID_FILE))
        for source, records in ((run_folder.STATS_FILE, stats), (FID_FILE, fid_records)):
            for record in records:
                for key, value in record.items():
                    if key.lower().startswith("fid") and isinstance(value, (int, float)) and math.isfinite(value):
                        newest[key] = {"name": key, "value": round(float(value), 3), "epoch": record.get("epoch"),
                                       "source": source}
        return sorted(newest.values(), key=lambda r: r["name"])

    def _nearest_status(self) -> dict:
        dataset = self.dataset
        if dataset is None:
            return {"available": False, "reason": "the run's training images were not found (start with --path)"}
        if dataset.loaded and dataset.images is None:
            return {"available": False, "reason": dataset.error}
        return {"available": True, "name": dataset.label,
                "searched": None if dataset.images is None else len(dataset.images)}

    def summary(self, limits: dict) -> dict:
        """The run for the page: model, progress, last losses, FID if measured, what can be shown."""
        try:
            options = run_folder.read_json(os.path.join(self.run_dir, run_folder.OPTIONS_FILE))
        except (OSError, ValueError):
            options = {}
        config = options.get("config") or {}
        model = config.get("model") or {}
        dataset_info = options.get("dataset") or {}
        dataset_path = str(dataset_info.get("path") or "")
        stats = read_jsonl_tolerant(os.path.join(self.run_dir, run_folder.STATS_FILE))
        last = stats[-1] if stats else {}
        return {
            "name": self.name,
            "preset": config.get("preset"),
            "architecture": model.get("architecture"),
            "image_size": self.sampler.image_size,
            "z_dim": self.sampler.z_dim,
            "z_distribution": model.get("z_distribution"),
            "g_width": model.get("g_width"),
            "d_width": model.get("d_width"),
            "batch_size": (config.get("training") or {}).get("batch_size"),
            "epochs_done": last.get("epoch", 0),
            "epochs_planned": config.get("epochs"),
            "steps": last.get("step"),
            "last_epoch": {k: round(float(last[k]), 4) for k in ("d_loss", "g_loss", "zpred_loss", "d_real", "d_fake")
                           if isinstance(last.get(k), (int, float))},
            "dataset": {"name": os.path.basename(os.path.normpath(dataset_path)) if dataset_path else None,
                        "num_images": dataset_info.get("num_images")},
            "fid": self.fid_values(stats),
            "nearest": self._nearest_status(),
            "interpolation": self.default_mode,
            "images": {name: (f"/run/{name}" if self._has(name) else None)
                       for name in ("losses.png", LATEST_GRID, "progress.gif")},
            "limits": {"max_faces": self.max_faces, "max_seed": MAX_SEED, **limits},
        }
