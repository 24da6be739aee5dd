"""Times data_tools/crop_faces.py on the shared illustrations.

    python bench/bench_crop_faces.py                   # --workers 1 and 2, best of 2 runs each
    python bench/bench_crop_faces.py --workers 1,2,4 --repeats 3 --format tfrecord

Each run is the real command line (a fresh process, so start-up and worker
spawning are counted) writing into a temporary folder that is deleted
afterwards. Reports wall-clock seconds, images/s and faces/s (faces detected)
for the best run, the median, and the CPU seconds of the run (user + system
of the tool and its workers), which a busy machine inflates much less than
wall-clock time; the load average before each run shows how busy it was. Needs ../shared/data/illustrations and
../shared/data/lbpcascade_animeface.xml beside the project root.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

flags.DEFINE_string("input", str(SHARED / "illustrations"), "Folder of illustrations to time the tool on.")
flags.DEFINE_string("cascade", str(SHARED / "lbpcascade_animeface.xml"), "Detector file.")
flags.DEFINE_list("workers", ["1", "2"], "Worker counts to time.")
flags.DEFINE_integer("repeats", 2, "Runs per worker count (the best is reported).", lower_bound=1)
flags.DEFINE_enum("format", "png", ["png", "jpg", "tfrecord"], "Output format.")
FLAGS = flags.FLAGS


def time_once(workers: int, output: Path) -> tuple[float, float, int, int, list[str]]:
    """(wall seconds, CPU seconds, images handled, faces detected, command)."""
    command = [
        sys.executable, "data_tools/crop_faces.py", "--input", FLAGS.input, "--output", str(output),
        "--cascade", FLAGS.cascade, "--workers", str(workers), "--format", FLAGS.format,
    ]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"crop_faces failed:\n{done.stderr}")
    with open(output / "sources.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return seconds, cpu, len(rows), sum(r["faces_detected"] for r in rows), command


def main(argv) -> None:
    del argv
    for needed in (FLAGS.input, FLAGS.cascade):
        if not os.path.exists(needed):
            raise SystemExit(f"benchmark data missing: {needed} (see ../shared/data/README.md)")
    import cv2

    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, OpenCV {cv2.__version__}")
    print(f"{'workers':>7} {'best s':>7} {'median s':>8} {'images/s':>8} {'faces/s':>7} {'cpu s':>6}  load before runs")
    command = []
    for workers in (int(w) for w in FLAGS.workers):
        runs = []
        for _ in range(FLAGS.repeats):
            load = os.getloadavg()[0]
            with tempfile.TemporaryDirectory() as tmp:
                seconds, cpu, images, faces, command = time_once(workers, Path(tmp) / "faces")
            runs.append((seconds, cpu, images, faces, load))
        seconds, cpu, images, faces, _ = min(runs)
        median = statistics.median(r[0] for r in runs)
        print(f"{workers:>7} {seconds:>7.2f} {median:>8.2f} {images / seconds:>8.2f} {faces / seconds:>7.2f} "
              f"{cpu:>6.1f}  {', '.join(f'{r[4]:.1f}' for r in runs)}")
    shown = ["python"] + [os.path.relpath(c, ROOT) if os.path.isabs(c) and not c.startswith(tempfile.gettempdir())
                          else c for c in command[1:]]
    shown[shown.index("--output") + 1] = "<tmp>/faces"
    print(f"{images} images, {faces} faces detected; command (with the --workers above):")
    print("  " + shlex.join(shown))


if __name__ == "__main__":
    app.run(main)
