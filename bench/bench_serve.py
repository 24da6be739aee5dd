"""Latency of the explorer page's grid endpoint: 64 faces at 64x64.

    python bench/bench_serve.py                                  # trains a throwaway 64x64 DCGAN first
    python bench/bench_serve.py --run_dir runs/00003-faces-dcgan --requests 20 --count 64
    python bench/bench_serve.py --model illustration                # the IllustrationGAN generator (heavier)

Starts the real server (werkzeug, threaded, on a free loopback port) in this process
and times, over HTTP, `GET /api/faces?seed=S&count=64` with a new start seed per
request, so every face is generated (one batched forward pass + 64 PNG encodings;
the face cache never helps). Also timed: the grid as the page loads it (requests of
16 faces one after another, each chunk's PNGs fetched over 6 parallel connections
as a browser does; the time until the first 16 are shown, and until all are), and
`/api/grid.png` (the same faces as one picture). Prints median and p90 of each, the
load average before and after (other processes share the CPU) and the command.

Without --run_dir, a 64x64 generator of --model at the preset's full width (for
dcgan 3.58M parameters, the size a real run has) is trained for one epoch on 64
shared faces into a temporary folder: the weights do not matter for speed, only
the shapes.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FACES = ROOT.parent / "shared" / "data" / "anime_faces"
PAGE_CHUNK = 16  # GRID_CHUNK of static/app.js

flags.DEFINE_string("run_dir", "", "A run folder to serve; '' = train a throwaway 64x64 DCGAN first.")
flags.DEFINE_integer("count", 64, "Faces per grid request.", lower_bound=1, upper_bound=256)
flags.DEFINE_integer("requests", 20, "Timed requests per endpoint (after 2 warm-up requests).", lower_bound=1)
flags.DEFINE_string("model", "dcgan", "Preset of the throwaway run (its generator at full width; D kept small).")
flags.DEFINE_integer("g_width", 64, "Generator width of the throwaway run (64 = the presets' default).", lower_bound=1)
FLAGS = flags.FLAGS


def tiny_run(folder: Path) -> str:
    import tensorflow as tf

    from illustration_gan import config as config_lib
    from illustration_gan import data, training

    if not FACES.exists():
        raise SystemExit(f"no --run_dir and no shared faces at {FACES} to train a throwaway run on")
    faces = folder / "faces"
    faces.mkdir()
    for i in range(64):
        (faces / f"{i}.jpg").write_bytes((FACES / f"{i}.jpg").read_bytes())
    overrides = dict(image_size=64, g_width=FLAGS.g_width, d_width=16, batch_size=32, epochs=1, path=str(faces))
    if FLAGS.model == "illustration":
        overrides["minibatch_kernels"] = 8  # the discriminator only slows the throwaway training down
    config = config_lib.resolve(FLAGS.model, overrides)
    run_dir = str(folder / "run")
    training.train(config, data.scan(str(faces)), run_dir, tf.distribute.get_strategy())
    return run_dir


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def main(argv):
    del argv
    from illustration_gan.serve import create_app, explorer_of, make_server

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = FLAGS.run_dir or tiny_run(Path(tmp))
        application = create_app(run_dir, dataset_path="", max_faces=max(256, FLAGS.count))
        explorer = explorer_of(application)
        generator = explorer.sampler.generator
        explorer.warm_up()
        server = make_server(application)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request lines
        load_before = os.getloadavg()
        seed = 1_000_000
        pool = concurrent.futures.ThreadPoolExecutor(6)

        def grid_json():
            nonlocal seed
            seed += FLAGS.count
            return fetch(f"{base}/api/faces?seed={seed}&count={FLAGS.count}")

        def grid_page():
            """As app.js loads a grid: chunks of 16 (a request each), each chunk's PNGs fetched in parallel."""
            nonlocal seed
            seed += FLAGS.count
            start = time.perf_counter()
            pending, first = [], None
            for offset in range(0, FLAGS.count, PAGE_CHUNK):
                n = min(PAGE_CHUNK, FLAGS.count - offset)
                faces = json.loads(fetch(f"{base}/api/faces?seed={seed + offset}&count={n}"))["faces"]
                chunk = [pool.submit(fetch, base + f["url"]) for f in faces]
                if first is None:
                    concurrent.futures.wait(chunk)
                    first = time.perf_counter() - start
                pending += chunk
            assert all(len(f.result()) for f in pending)
            return first

        def grid_png():
            nonlocal seed
            seed += FLAGS.count
            fetch(f"{base}/api/grid.png?seed={seed}&count={FLAGS.count}")

        results = {}
        first_faces = []
        for name, call in ((f"/api/faces?count={FLAGS.count} (JSON; faces generated)", grid_json),
                           (f"page: {FLAGS.count} faces as the page loads them", grid_page),
                           (f"/api/grid.png?count={FLAGS.count} (one picture)", grid_png)):
            for _ in range(2):
                call()
            times = []
            for _ in range(FLAGS.requests):
                start = time.perf_counter()
                first = call()
                times.append(1000 * (time.perf_counter() - start))
                if call is grid_page:
                    first_faces.append(1000 * first)
            results[name] = times
            if call is grid_page:
                results[f"page: first {min(PAGE_CHUNK, FLAGS.count)} faces shown"] = first_faces
        load_after = os.getloadavg()
        server.shutdown()
        pool.shutdown()

    size = explorer.sampler.image_size
    print(f"grid of {FLAGS.count} faces at {size}x{size}; generator {generator.count_params() / 1e6:.2f}M parameters "
          f"({generator.model_config.architecture}); {FLAGS.requests} requests each, new seeds every request")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    for name, times in results.items():
        print(f"  {name:48s} median {statistics.median(times):7.1f} ms   p90 {percentile(times, 0.9):7.1f} ms   "
              f"min {min(times):7.1f} ms")
    print("command: " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))


if __name__ == "__main__":
    app.run(main)
