"""The explorer page of a run: a Flask app over a `generate.Sampler`.

A face's identity is its seed: face `s` is the generator's image of
`sampler.latent_for_seed(s)`, so a seed typed into the page (or into a URL)
always gives the same face. Endpoints (all GET; errors are JSON
``{"error": "..."}`` with a 4xx status, never a traceback):

  /                                   the page (static/index.html, app.js, style.css; no CDN)
  /api/run                            run summary: model, epochs, last losses, FID if measured, image links
  /api/faces?seed=S&count=N           faces S..S+N-1 (one batched forward pass): seeds and PNG URLs;
                                      without seed, a random start seed
  /api/face/<seed>.png[?download=1]   one face at the generator's resolution
  /api/grid.png?seed=S&count=N        faces S..S+N-1 as one grid picture
  /api/nearest/<seed>?k=5             the k training images closest to the face (pixel MSE)
  /api/dataset/<index>.png            a training image, by its index in the dataset's own file list
  /api/interpolate.png?a=&b=&t=0.5    one frame between faces a and b (slerp for Gaussian z)
  /api/interpolate.gif?a=&b=&steps=16 the animation a -> b -> a (for download)
  /run/losses.png, /run/latest_grid.png, /run/progress.gif
                                      fixed files of the run folder (the newest fakes_*.png is the grid)

Nothing else of the run folder, and no file named by a request, is ever served.
The generator runs under one lock (the server is threaded); rendered face PNGs are
kept in a small LRU cache, so the page's per-face image requests after /api/faces
cost nothing. Training images for the nearest-neighbour check are decoded once, on
first use, resized to the generator's resolution (at most MAX_DATASET_IMAGES).
"""

from __future__ import annotations

import collections
import glob
import io
import ipaddress
import json
import logging
import math
import os
import random
import re
import sys
import threading
import time

import numpy as np
from flask import Flask, Response, jsonify, request, send_file
from werkzeug.exceptions import BadRequest, HTTPException, NotFound, RequestEntityTooLarge, RequestURITooLarge

from illustration_gan import UserError, run_folder

MAX_SEED = 2**31 - 1
RANDOM_SEEDS = 1_000_000  # a grid without a seed starts below this (short seeds to read); any seed works
DEFAULT_COUNT = 32
MAX_NEAREST = 16
MAX_STEPS = 64  # frames of an interpolation GIF (one way)
MAX_DATASET_IMAGES = 10_000
MAX_QUERY_BYTES = 1024
MAX_CONTENT_BYTES = 16 * 1024  # every endpoint is a GET; a body is never needed
GIF_SIDE = 256  # GIF frames are scaled up (nearest neighbour) to about this many pixels
FID_FILE = "metric-fid.jsonl"
RUN_FILES = {"losses.png": "losses.png", "progress.gif": "progress.gif"}  # plus latest_grid.png

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_INT = re.compile(r"[0-9]{1,12}")

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- requests


def _parse_int(name: str, text: str | None, low: int, high: int, default: int | None = None) -> int:
    if text is None or text == "":
        if default is None:
            raise BadRequest(f"missing parameter {name!r}: an integer from {low} to {high}")
        return default
    if not _INT.fullmatch(text) or not low <= int(text) <= high:
        shown = text if len(text) <= 24 else text[:24] + "..."
        raise BadRequest(f"{name} must be an integer from {low} to {high}, not {shown!r}")
    return int(text)


def _parse_float01(name: str, text: str | None, default: float) -> float:
    if text is None or text == "":
        return default
    try:
        value = float(text) if len(text) <= 32 else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        shown = text if len(text) <= 24 else text[:24] + "..."
        raise BadRequest(f"{name} must be a number from 0 to 1, not {shown!r}")
    return value


def _arg_int(name: str, low: int, high: int, default: int | None = None) -> int:
    return _parse_int(name, request.args.get(name), low, high, default)


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _image_response(body: bytes, mimetype: str, download_name: str | None = None, max_age: int = 600) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = f"private, max-age={max_age}"
    if download_name and request.args.get("download") in ("1", "true", "yes"):
        response.headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return response


def _read_jsonl_tolerant(path: str) -> list[dict]:
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
        self._loaded = False
        self.images: np.ndarray | None = None  # (n, size, size, 3) uint8
        self.names: list[str] = []  # display names (file names), by index
        self.total = 0  # inputs found (before the limit)
        self.error: str | None = None

    @property
    def label(self) -> str:
        return os.path.basename(os.path.normpath(self.path.split("*")[0])) or self.path

    def load(self) -> "TrainingImages":
        with self._lock:
            if not self._loaded:
                try:
                    self._load()
                except Exception as error:  # a dataset problem must not break the rest of the page
                    log.warning("cannot load training images from %s: %s", self.path, error)
                    self.error = f"the training images ({self.label}) could not be read"
                self._loaded = True
        return self

    def _load(self) -> None:
        import tensorflow as tf

        from illustration_gan import data

        started = time.perf_counter()
        size = self.image_size
        files = data.list_image_files(self.path) if tf.io.gfile.isdir(self.path) else []
        if files:
            self.total = len(files)
            files = files[: self.limit]
            names = [os.path.relpath(f, self.path) if not self.path.startswith(("gs://", "s3://")) else f for f in files]
            ds = tf.data.Dataset.from_tensor_slices(files).enumerate()
            ds = ds.map(lambda i, f: (i, data.decode_to_rgb(tf.io.read_file(f), size)),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        else:
            shards = data.list_tfrecords(self.path)
            if not shards:
                self.error = f"no images found in the training folder ({self.label})"
                return
            spec = {data.TFRECORD_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
            records = tf.data.TFRecordDataset(shards, compression_type="GZIP" if shards[0].endswith(".gz") else None)
            ds = records.take(self.limit).enumerate().map(
                lambda i, r: (i, data.decode_to_rgb(tf.io.parse_single_example(r, spec)[data.TFRECORD_IMAGE_KEY], size)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            names = None
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
        log.info("nearest neighbours: %d training images from %s decoded in %.1fs",
                 len(self.images), self.path, time.perf_counter() - started)

    def nearest(self, image: np.ndarray, k: int) -> list[dict]:
        from illustration_gan.metrics import nearest_neighbours

        indices = nearest_neighbours(image[None], self.images, k=k, metric="mse")[0]
        diffs = self.images[indices].astype(np.float32) - image[None].astype(np.float32)
        mse = (diffs**2).reshape(len(indices), -1).mean(axis=1)
        return [
            {"index": int(i), "name": self.names[int(i)], "mse": round(float(e), 2), "url": f"/api/dataset/{int(i)}.png"}
            for i, e in zip(indices, mse)
        ]


# ----------------------------------------------------------------------------- generator


class Explorer:
    """The run and its generator, shared by all requests."""

    def __init__(self, run_dir: str, dataset_path: str | None, max_faces: int):
        from illustration_gan import generate

        if not os.path.isdir(run_dir) or not os.path.exists(os.path.join(run_dir, run_folder.OPTIONS_FILE)):
            raise UserError(f"{run_dir} is not a run folder (no {run_folder.OPTIONS_FILE})")
        self.run_dir = os.path.abspath(run_dir)
        self.name = os.path.basename(self.run_dir)
        self.max_faces = max_faces
        self.sampler = generate.load_sampler(self.run_dir)
        distribution = self.sampler.generator.model_config.z_distribution
        self.default_mode = "linear" if distribution == "uniform" else "slerp"
        self._generator_lock = threading.Lock()
        self._cache: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = max(1024, 4 * max_faces)
        if dataset_path is None:
            dataset_path = resolve_dataset_path(self.run_dir)
        self.dataset = TrainingImages(dataset_path, self.sampler.image_size) if dataset_path else None

    # generator calls: one at a time
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

    def _cached(self, key: tuple) -> bytes | None:
        with self._cache_lock:
            body = self._cache.get(key)
            if body is not None:
                self._cache.move_to_end(key)
            return body

    def _store(self, key: tuple, body: bytes) -> None:
        with self._cache_lock:
            self._cache[key] = body
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def face_images(self, seeds: list[int]) -> np.ndarray:
        return self.render(self.latents(seeds))

    def face_pngs(self, seeds: list[int]) -> list[bytes]:
        """PNGs of the faces, generating the ones not cached in one batch."""
        found = {s: self._cached(("face", s)) for s in seeds}
        missing = sorted({s for s, body in found.items() if body is None})
        if missing:
            for seed, image in zip(missing, self.face_images(missing)):
                found[seed] = _png_bytes(image)
                self._store(("face", seed), found[seed])
        return [found[s] for s in seeds]

    def interpolated_latents(self, a: int, b: int, ts: np.ndarray, mode: str) -> np.ndarray:
        za, zb = self.latents([a, b]).astype(np.float64)
        ts = np.asarray(ts, np.float64)[:, None]
        if mode == "slerp":
            cos = np.dot(za, zb) / max(np.linalg.norm(za) * np.linalg.norm(zb), 1e-12)
            omega = math.acos(min(1.0, max(-1.0, cos)))
            if math.sin(omega) > 1e-6:
                return (np.sin((1 - ts) * omega) * za + np.sin(ts * omega) * zb) / math.sin(omega)
        return (1 - ts) * za + ts * zb


# ----------------------------------------------------------------------------- the app


def create_app(run_dir: str, dataset_path: str | None = None, max_faces: int = 256) -> Flask:
    """The explorer of one run.

    dataset_path: the training images for the nearest-neighbour check; None = the run's
    own (training_options.json `config.path`, if it still exists); "" = none.
    max_faces: the most faces one request may ask for.
    Raises UserError if `run_dir` is not a run folder or has no generator yet.
    """
    if max_faces < 1:
        raise ValueError("max_faces must be at least 1")
    explorer = Explorer(run_dir, dataset_path, max_faces)
    app = Flask(__name__, static_folder=STATIC_DIR, static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_BYTES
    app.json.sort_keys = False
    app.extensions["illustration_gan_explorer"] = explorer

    # ---- limits, errors, headers

    @app.before_request
    def _bounded_request():
        if len(request.query_string) > MAX_QUERY_BYTES:
            raise RequestURITooLarge(f"the query string is longer than {MAX_QUERY_BYTES} bytes")
        if (request.content_length or 0) > MAX_CONTENT_BYTES:
            raise RequestEntityTooLarge(f"request bodies are limited to {MAX_CONTENT_BYTES} bytes")

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        message = error.description or error.name
        if error.code == 404 and message == NotFound.description:
            message = f"not found: {request.path[:200]}"
        if error.code == 413 and "limited" not in message:
            message = f"request too large: bodies are limited to {MAX_CONTENT_BYTES} bytes"
        response = jsonify(error=message, status=error.code)
        response.status_code = error.code or 500
        if error.code == 405:
            response.headers["Allow"] = ", ".join(error.valid_methods or ["GET"])
        return response

    @app.errorhandler(Exception)
    def _unexpected_error(error: Exception):
        app.logger.exception("error while serving %s", request.path)
        response = jsonify(error="internal server error (the details are in the server's log)", status=500)
        response.status_code = 500
        return response

    @app.after_request
    def _headers(response: Response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        )
        if request.path.startswith("/api/") and response.mimetype == "application/json":
            response.headers["Cache-Control"] = "no-store"
        return response

    # ---- the page

    @app.get("/")
    def index():
        response = send_file(os.path.join(STATIC_DIR, "index.html"), mimetype="text/html", max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        return response

    # ---- faces

    def _seed_range(default_random: bool = True) -> tuple[int, int]:
        count = _arg_int("count", 1, explorer.max_faces, DEFAULT_COUNT)
        if request.args.get("seed") in (None, "") and default_random:
            seed = random.randint(0, max(0, RANDOM_SEEDS - count))
        else:
            seed = _arg_int("seed", 0, MAX_SEED)
        if seed + count - 1 > MAX_SEED:
            raise BadRequest(f"seeds {seed}..{seed + count - 1} go past the largest seed {MAX_SEED}")
        return seed, count

    @app.get("/api/faces")
    def faces():
        started = time.perf_counter()
        seed, count = _seed_range()
        seeds = list(range(seed, seed + count))
        explorer.face_pngs(seeds)  # one batched forward pass; the URLs below then come from the cache
        return jsonify(
            seed=seed,
            count=count,
            image_size=explorer.sampler.image_size,
            faces=[{"seed": s, "url": f"/api/face/{s}.png"} for s in seeds],
            milliseconds=round(1000 * (time.perf_counter() - started), 1),
        )

    @app.get("/api/face/<seed>.png")
    def face(seed: str):
        seed = _parse_int("seed", seed, 0, MAX_SEED)
        (body,) = explorer.face_pngs([seed])
        return _image_response(body, "image/png", f"face-seed{seed}.png")

    @app.get("/api/grid.png")
    def grid():
        seed, count = _seed_range(default_random=False)
        images = explorer.face_images(list(range(seed, seed + count)))
        return _image_response(_png_bytes(run_folder.image_grid(images)), "image/png", f"faces-seed{seed}-n{count}.png")

    # ---- nearest training images

    def _dataset() -> TrainingImages:
        if explorer.dataset is None:
            raise NotFound("no training images for this run: start the server with --path pointing to them")
        dataset = explorer.dataset.load()
        if dataset.images is None:
            raise NotFound(f"nearest neighbours unavailable: {dataset.error}")
        return dataset

    @app.get("/api/nearest/<seed>")
    def nearest(seed: str):
        seed = _parse_int("seed", seed, 0, MAX_SEED)
        k = _arg_int("k", 1, MAX_NEAREST, 5)
        dataset = _dataset()
        (image,) = explorer.face_images([seed])
        return jsonify(seed=seed, k=k, searched=len(dataset.images), total=dataset.total,
                       metric="pixel mean squared error", neighbours=dataset.nearest(image, k))

    @app.get("/api/dataset/<index>.png")
    def dataset_image(index: str):
        dataset = _dataset()
        index = _parse_int("index", index, 0, len(dataset.images) - 1)
        key = ("dataset", index)
        body = explorer._cached(key)
        if body is None:
            body = _png_bytes(dataset.images[index])
            explorer._store(key, body)
        return _image_response(body, "image/png")

    # ---- interpolation

    def _pair_and_mode() -> tuple[int, int, str]:
        a = _arg_int("a", 0, MAX_SEED)
        b = _arg_int("b", 0, MAX_SEED)
        mode = request.args.get("mode") or explorer.default_mode
        if mode not in ("slerp", "linear"):
            raise BadRequest(f"mode must be 'slerp' or 'linear', not {mode[:24]!r}")
        return a, b, mode

    @app.get("/api/interpolate.png")
    def interpolate_frame():
        a, b, mode = _pair_and_mode()
        t = _parse_float01("t", request.args.get("t"), 0.5)
        key = ("frame", a, b, round(t, 6), mode)
        body = explorer._cached(key)
        if body is None:
            (image,) = explorer.render(explorer.interpolated_latents(a, b, np.array([t]), mode))
            body = _png_bytes(image)
            explorer._store(key, body)
        return _image_response(body, "image/png", f"interpolation-{a}-{b}-t{t:g}.png")

    @app.get("/api/interpolate.gif")
    def interpolate_gif():
        from PIL import Image

        a, b, mode = _pair_and_mode()
        steps = _arg_int("steps", 2, MAX_STEPS, 16)
        images = explorer.render(explorer.interpolated_latents(a, b, np.linspace(0.0, 1.0, steps), mode))
        scale = max(1, GIF_SIDE // explorer.sampler.image_size)
        frames = [Image.fromarray(im).resize((im.shape[1] * scale, im.shape[0] * scale), Image.NEAREST) for im in images]
        frames = frames + frames[-2:0:-1]  # there and back: a seamless loop
        durations = [60] * len(frames)
        durations[0] = durations[steps - 1] = 600  # linger on a and on b
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
        return _image_response(buffer.getvalue(), "image/gif", f"interpolation-{a}-{b}.gif")

    # ---- the run

    @app.get("/api/run")
    def run_summary():
        return jsonify(_summary(explorer))

    @app.get("/run/<name>")
    def run_file(name: str):
        path = _run_file(explorer.run_dir, name)
        if path is None:
            raise NotFound(f"the run has no {name[:80]} (served: latest_grid.png, {', '.join(RUN_FILES)})")
        response = send_file(path, max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        return response

    return app


def _run_file(run_dir: str, name: str) -> str | None:
    """Only fixed names, mapped to fixed files of the run folder."""
    if name == "latest_grid.png":
        grids = sorted(glob.glob(os.path.join(glob.escape(run_dir), "fakes_*.png")))
        return grids[-1] if grids else None
    if name in RUN_FILES:
        path = os.path.join(run_dir, RUN_FILES[name])
        return path if os.path.isfile(path) else None
    return None


def _fid_values(run_dir: str, stats: list[dict]) -> list[dict]:
    """The newest value of every fid* key, from metric-fid.jsonl and stats.jsonl."""
    newest: dict[str, dict] = {}
    for source, records in ((run_folder.STATS_FILE, stats), (FID_FILE, _read_jsonl_tolerant(os.path.join(run_dir, FID_FILE)))):
        for record in records:
            for key, value in record.items():
                if key.lower().startswith("fid") and isinstance(value, (int, float)) and math.isfinite(value):
                    newest[key] = {"name": key, "value": round(float(value), 3), "epoch": record.get("epoch"),
                                   "source": source}
    return sorted(newest.values(), key=lambda r: r["name"])


def _summary(explorer: Explorer) -> dict:
    run_dir = explorer.run_dir
    try:
        options = run_folder.read_json(os.path.join(run_dir, run_folder.OPTIONS_FILE))
    except (OSError, ValueError):
        options = {}
    config = options.get("config") or {}
    model = config.get("model") or {}
    dataset_info = options.get("dataset") or {}
    stats = _read_jsonl_tolerant(os.path.join(run_dir, run_folder.STATS_FILE))
    last = stats[-1] if stats else {}
    dataset = explorer.dataset
    if dataset is None:
        nearest = {"available": False, "reason": "the run's training images were not found (start with --path)"}
    elif dataset._loaded and dataset.images is None:
        nearest = {"available": False, "reason": dataset.error}
    else:
        nearest = {"available": True, "name": dataset.label,
                   "searched": None if dataset.images is None else len(dataset.images)}
    dataset_path = str(dataset_info.get("path") or "")
    return {
        "name": explorer.name,
        "preset": config.get("preset"),
        "architecture": model.get("architecture"),
        "image_size": explorer.sampler.image_size,
        "z_dim": explorer.sampler.z_dim,
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
        "fid": _fid_values(run_dir, stats),
        "nearest": nearest,
        "interpolation": explorer.default_mode,
        "images": {name: (f"/run/{name}" if _run_file(run_dir, name) else None)
                   for name in ("losses.png", "latest_grid.png", "progress.gif")},
        "limits": {"max_faces": explorer.max_faces, "max_seed": MAX_SEED, "max_steps": MAX_STEPS,
                   "max_nearest": MAX_NEAREST},
    }


# ----------------------------------------------------------------------------- the server


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(run_dir: str, dataset_path: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Runs the explorer of `run_dir` until Ctrl-C. dataset_path None: the run's own images."""
    from werkzeug.serving import make_server

    if dataset_path is None:
        dataset_path = resolve_dataset_path(run_dir) or ""
    elif dataset_path and not ("://" in dataset_path or os.path.exists(dataset_path)):
        raise UserError(f"--path {dataset_path} does not exist")
    app = create_app(run_dir, dataset_path)
    explorer: Explorer = app.extensions["illustration_gan_explorer"]
    if not _is_loopback(host):
        message = (f"serving on {host or 'all interfaces'}, not only on this computer: anyone who can reach "
                   f"port {port} can use the page (there is no login). Use --host 127.0.0.1 to keep it local.")
        log.warning(message)
        print(f"WARNING: {message}", file=sys.stderr, flush=True)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror or error}); try another --port") from error
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per face image; errors still show
    explorer.warm_up()
    if explorer.dataset is not None:  # decode the training images now, so the first click is quick
        threading.Thread(target=explorer.dataset.load, name="load-training-images", daemon=True).start()
        where = f"nearest neighbours among the images in {dataset_path}"
    else:
        where = "no training images found: nearest neighbours off (pass --path)"
    shown_host = host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    print(f"Serving {explorer.name} ({where})", flush=True)
    print(f"Open http://{shown_host}:{server.server_port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()
    return 0
