"""The explorer page of a run over HTTP: routes, request checks, JSON errors, the server.

What is shown comes from `illustration_gan.serve.explorer.Explorer`; this module only
parses requests, maps them to it and answers. Endpoints (all GET; every error, including
the HTTP server's own, is JSON ``{"error": "...", "status": N}``, never a traceback or
an HTML page):

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

Nothing else of the run folder, and no file named by a request, is ever served. The
server names itself `illustration-gan`, without Werkzeug's or Python's version.
"""

from __future__ import annotations

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

from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_file
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest, HTTPException, NotFound, RequestEntityTooLarge, RequestURITooLarge
from werkzeug.serving import WSGIRequestHandler

from illustration_gan import UserError, run_folder
from illustration_gan.serve.explorer import FID_FILE, MAX_SEED, Explorer, Unavailable, resolve_dataset_path

__all__ = ["FID_FILE", "create_app", "explorer_of", "make_server", "resolve_dataset_path", "serve"]

RANDOM_SEEDS = 1_000_000  # a grid without a seed starts below this (short seeds to read); any seed works
DEFAULT_COUNT = 32
MAX_NEAREST = 16
MAX_STEPS = 64  # frames of an interpolation GIF (one way)
MAX_QUERY_BYTES = 1024
MAX_CONTENT_BYTES = 16 * 1024  # every endpoint is a GET; a body is never needed
SERVER_NAME = "illustration-gan"
EXTENSION = "illustration_gan_explorer"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_INT = re.compile(r"[0-9]{1,12}")

log = logging.getLogger(__name__)
routes = Blueprint("explorer", __name__)


# ----------------------------------------------------------------------------- requests


def _shown(text: str) -> str:
    return text if len(text) <= 24 else text[:24] + "..."


def _parse_int(name: str, text: str | None, low: int, high: int, default: int | None = None) -> int:
    if text is None or text == "":
        if default is None:
            raise BadRequest(f"missing parameter {name!r}: an integer from {low} to {high}")
        return default
    if not _INT.fullmatch(text) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, not {_shown(text)!r}")
    return int(text)


def _parse_float01(name: str, text: str | None, default: float) -> float:
    if text is None or text == "":
        return default
    try:
        value = float(text) if len(text) <= 32 else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise BadRequest(f"{name} must be a number from 0 to 1, not {_shown(text)!r}")
    return value


def _arg_int(name: str, low: int, high: int, default: int | None = None) -> int:
    return _parse_int(name, request.args.get(name), low, high, default)


def _explorer() -> Explorer:
    return explorer_of(current_app)


def _seed_range(default_random: bool = True) -> tuple[int, int]:
    count = _arg_int("count", 1, _explorer().max_faces, DEFAULT_COUNT)
    if request.args.get("seed") in (None, "") and default_random:
        seed = random.randint(0, max(0, RANDOM_SEEDS - count))
    else:
        seed = _arg_int("seed", 0, MAX_SEED)
    if seed + count - 1 > MAX_SEED:
        raise BadRequest(f"seeds {seed}..{seed + count - 1} go past the largest seed {MAX_SEED}")
    return seed, count


def _pair_and_mode() -> tuple[int, int, str]:
    a = _arg_int("a", 0, MAX_SEED)
    b = _arg_int("b", 0, MAX_SEED)
    mode = request.args.get("mode") or _explorer().default_mode
    if mode not in ("slerp", "linear"):
        raise BadRequest(f"mode must be 'slerp' or 'linear', not {mode[:24]!r}")
    return a, b, mode


def _image_response(body: bytes, mimetype: str, download_name: str | None = None, max_age: int = 600) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = f"private, max-age={max_age}"
    if download_name and request.args.get("download") in ("1", "true", "yes"):
        response.headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return response


# ----------------------------------------------------------------------------- limits, errors, headers


class _FiniteJSON(DefaultJSONProvider):
    """JSON with NaN and infinities sent as null: Python writes them (a diverged run's stats.jsonl
    holds NaN), but they are not JSON (RFC 8259) and a browser's JSON.parse refuses the whole answer."""

    sort_keys = False

    def dumps(self, obj, **kwargs):
        return super().dumps(_finite(obj), allow_nan=False, **kwargs)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value



@routes.before_app_request
def _bounded_request():
    if len(request.query_string) > MAX_QUERY_BYTES:
        raise RequestURITooLarge(f"the query string is longer than {MAX_QUERY_BYTES} bytes")
    if (request.content_length or 0) > MAX_CONTENT_BYTES:
        raise RequestEntityTooLarge(f"request bodies are limited to {MAX_CONTENT_BYTES} bytes")


def _json_error(message: str, status: int) -> Response:
    response = jsonify(error=message, status=status)
    response.status_code = status
    return response


@routes.app_errorhandler(HTTPException)
def _http_error(error: HTTPException):
    message = error.description or error.name
    if error.code == 404 and message == NotFound.description:
        message = f"not found: {request.path[:200]}"
    if error.code == 413 and "limited" not in message:
        message = f"request too large: bodies are limited to {MAX_CONTENT_BYTES} bytes"
    response = _json_error(message, error.code or 500)
    if error.code == 405:
        response.headers["Allow"] = ", ".join(error.valid_methods or ["GET"])
    return response


@routes.app_errorhandler(Unavailable)
def _unavailable(error: Unavailable):
    return _json_error(str(error), 404)


@routes.app_errorhandler(Exception)
def _unexpected_error(error: Exception):
    current_app.logger.exception("error while serving %s", request.path)
    return _json_error("internal server error (the details are in the server's log)", 500)


@routes.after_app_request
def _headers(response: Response):
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/api/") and response.mimetype == "application/json":
        response.headers["Cache-Control"] = "no-store"
    return response


# ----------------------------------------------------------------------------- routes


@routes.get("/")
def index():
    response = send_file(os.path.join(STATIC_DIR, "index.html"), mimetype="text/html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@routes.get("/api/faces")
def faces():
    started = time.perf_counter()
    seed, count = _seed_range()
    seeds = list(range(seed, seed + count))
    _explorer().face_pngs(seeds)  # one batched forward pass; the URLs below then come from the cache
    return jsonify(
        seed=seed,
        count=count,
        image_size=_explorer().sampler.image_size,
        faces=[{"seed": s, "url": f"/api/face/{s}.png"} for s in seeds],
        milliseconds=round(1000 * (time.perf_counter() - started), 1),
    )


@routes.get("/api/face/<seed>.png")
def face(seed: str):
    seed = _parse_int("seed", seed, 0, MAX_SEED)
    (body,) = _explorer().face_pngs([seed])
    return _image_response(body, "image/png", f"face-seed{seed}.png")


@routes.get("/api/grid.png")
def grid():
    seed, count = _seed_range(default_random=False)
    return _image_response(_explorer().grid_png(seed, count), "image/png", f"faces-seed{seed}-n{count}.png")


@routes.get("/api/nearest/<seed>")
def nearest(seed: str):
    seed = _parse_int("seed", seed, 0, MAX_SEED)
    k = _arg_int("k", 1, MAX_NEAREST, 5)
    return jsonify(_explorer().nearest(seed, k))


@routes.get("/api/dataset/<index>.png")
def dataset_image(index: str):
    explorer = _explorer()
    index = _parse_int("index", index, 0, len(explorer.training_images().images) - 1)
    return _image_response(explorer.dataset_png(index), "image/png")


@routes.get("/api/interpolate.png")
def interpolate_frame():
    a, b, mode = _pair_and_mode()
    t = _parse_float01("t", request.args.get("t"), 0.5)
    body = _explorer().interpolation_png(a, b, t, mode)
    return _image_response(body, "image/png", f"interpolation-{a}-{b}-t{t:g}.png")


@routes.get("/api/interpolate.gif")
def interpolate_gif():
    a, b, mode = _pair_and_mode()
    steps = _arg_int("steps", 2, MAX_STEPS, 16)
    return _image_response(_explorer().interpolation_gif(a, b, steps, mode), "image/gif", f"interpolation-{a}-{b}.gif")


@routes.get("/api/run")
def run_summary():
    return jsonify(_explorer().summary({"max_steps": MAX_STEPS, "max_nearest": MAX_NEAREST}))


@routes.get("/run/<name>")
def run_file(name: str):
    response = send_file(_explorer().run_file(name), max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


def create_app(run_dir: str, dataset_path: str | None = None, max_faces: int = 256, best: bool = False) -> Flask:
    """The explorer of one run.

    dataset_path: the training images for the nearest-neighbour check; None = the run's
    own (training_options.json `config.path`, if it still exists); "" = none.
    max_faces: the most faces one request may ask for.
    best: explore generator-best.keras (kept by --fid_every) instead of generator.keras.
    Raises UserError if `run_dir` is not a run folder or has no generator yet.
    """
    explorer = Explorer(run_dir, dataset_path, max_faces, best)
    app = Flask(__name__, static_folder=STATIC_DIR, static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_BYTES
    app.json = _FiniteJSON(app)
    app.extensions[EXTENSION] = explorer
    app.register_blueprint(routes)
    return app


def explorer_of(app: Flask) -> Explorer:
    """The Explorer behind an app made by create_app: its sampler, warm_up(), ..."""
    return app.extensions[EXTENSION]


# ----------------------------------------------------------------------------- the server


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without its version banner, and with JSON for the errors it answers itself.

    http.server answers some requests before the app sees them (a request line over 64 KiB:
    414, a malformed one: 400, too many or too long headers: 431, ...) with an HTML page.
    """

    server_version = SERVER_NAME  # also the WSGI environ's SERVER_SOFTWARE

    def version_string(self) -> str:
        return SERVER_NAME

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        short, long = self.responses.get(code, ("Error", ""))
        self.log_error("code %d, message %s", code, message or short)
        text = (message or short)[:200] + (f": {explain or long}" if explain or long else "")
        data = json.dumps({"error": text, "status": code}).encode()
        if self.request_version == "HTTP/0.9":  # a garbled request line: answer with a status line and headers
            self.request_version = "HTTP/1.0"
        self.send_response(code, short)
        self.send_header("Connection", "close")
        if code >= 200 and code not in (204, 205, 304):
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 205, 304):
            self.wfile.write(data)


def make_server(app: Flask, host: str = "127.0.0.1", port: int = 0):
    """A threaded HTTP server for `app` (werkzeug's, with the handler above); port 0 picks a free one."""
    from werkzeug.serving import make_server as werkzeug_server

    return werkzeug_server(host, port, app, threaded=True, request_handler=_RequestHandler)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(run_dir: str, dataset_path: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          best: bool = False) -> int:
    """Runs the explorer of `run_dir` until Ctrl-C. dataset_path None: the run's own images."""
    if dataset_path is None:
        dataset_path = resolve_dataset_path(run_dir) or ""
    elif dataset_path and not ("://" in dataset_path or os.path.exists(dataset_path)):
        raise UserError(f"--path {dataset_path} does not exist")
    app = create_app(run_dir, dataset_path, best=best)
    explorer = explorer_of(app)
    try:
        run_folder.read_options(run_dir)
    except run_folder.DamagedFile as error:  # the generator does not need it: serve, and say so
        print(f"WARNING: {error}. The page shows the run without its settings.", file=sys.stderr, flush=True)
    if not _is_loopback(host):
        message = (f"serving on {host or 'all interfaces'}, not only on this computer: anyone who can reach "
                   f"port {port} can use the page (there is no login). Use --host 127.0.0.1 to keep it local.")
        log.warning(message)
        print(f"WARNING: {message}", file=sys.stderr, flush=True)
    try:
        server = make_server(app, host, port)
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
