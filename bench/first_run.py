"""Seconds from the first README command to its first training step, and of a missing --path.

  python bench/first_run.py [--repeats 3] [--parts first_step,missing_path] [--dry]

Issue 48's targets, on an idle machine: `python train.py --TYPE train` (the README's first
command, install excluded) reaches its first training step within 20 s, and
`python train.py --TYPE train --path missing/` answers in under 1 s.

The first step: on a terminal the training loop prints a progress line ("step N/M ...")
after each call of the compiled step, and its first call runs one step (training/loop.py,
`Pace`). So the command runs under a pseudo-terminal, and the clock stops at the first
progress line; the process is then killed and its run folder (under a temporary
--run_root) removed. It is run twice: with an empty cache (ILLUSTRATION_GAN_CACHE in a
temporary folder, so the toy faces are drawn as on a first install) and again with that
cache. The first run's timeline (when each of its first lines appeared) shows where the
seconds go. The missing path is timed `--repeats` times; the median counts. Prints the
CPU model (`lscpu`) and the load average with the numbers.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, str(ROOT / "train.py"), "--TYPE", "train"]
FIRST_STEP = re.compile(r"^step \d+/\d+ ")  # the loop's progress line (training/callbacks.py, Progress)


def cpu_model() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        lines = []
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
    return f"{fields.get('Model name', 'unknown CPU')}, {fields.get('CPU(s)', os.cpu_count())} CPU(s)"


def until_first_step(args: list[str], env: dict, timeout: float) -> tuple[float, list[tuple[float, str]]]:
    """Seconds from launching `args` under a pseudo-terminal to its first progress line, and the
    (seconds, line) of every line it printed before it. Kills the process there."""
    master, slave = pty.openpty()
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                               start_new_session=True)
    os.close(slave)
    lines, pending = [], ""
    try:
        while time.perf_counter() - started < timeout:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536).decode(errors="replace")
            except OSError:  # the process closed its terminal
                break
            pending += chunk
            *complete, pending = re.split(r"[\r\n]", pending)
            for line in [*complete, pending]:
                if FIRST_STEP.match(line):
                    return time.perf_counter() - started, lines
            lines.extend((time.perf_counter() - started, line) for line in complete if line.strip())
        tail = "\n".join(line for _, line in [*lines, (0, pending)][-5:])
        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = "none yet"
        raise SystemExit(f"no training step after {time.perf_counter() - started:.0f} s (exit code {code}); "
                         f"its last lines:\n{tail}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        os.close(master)


def missing_path_seconds(env: dict, repeats: int) -> tuple[float, str]:
    """The median wall time of `--path` naming nothing, and the answer it printed."""
    times, answer = [], ""
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run([*COMMAND, "--path", "missing/"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        times.append(time.perf_counter() - started)
        answer = f"exit {done.returncode}: {(done.stdout + done.stderr).strip()}"
    return statistics.median(times), answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="first_step,missing_path", help="comma list of first_step, missing_path")
    parser.add_argument("--repeats", type=int, default=3, help="timings of the missing path (the median counts)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a first step")
    parser.add_argument("--dry", action="store_true", help="print the commands and the machine, run nothing")
    args = parser.parse_args()
    parts = args.parts.split(",")
    scratch = Path(tempfile.mkdtemp(prefix="first-run-"))
    env = {**os.environ, "ILLUSTRATION_GAN_CACHE": str(scratch / "cache")}
    first = [*COMMAND, "--run_root", str(scratch / "runs")]
    print(f"machine: {cpu_model()}; load average {os.getloadavg()[0]:.2f} before; code {_commit()}")
    if args.dry:
        print(f"would run: {' '.join(first)} (under a pseudo-terminal, twice, ILLUSTRATION_GAN_CACHE={scratch}/cache)")
        print(f"would run: {' '.join(COMMAND)} --path missing/ ({args.repeats} times)")
        shutil.rmtree(scratch)
        return 0
    rows, timeline = [], []
    try:
        if "first_step" in parts:
            seconds, timeline = until_first_step(first, env, args.timeout)
            rows.append(("first README command to its first training step, empty cache", seconds, "at most 20"))
            seconds, _ = until_first_step(first, env, args.timeout)
            rows.append(("the same again, toy faces cached", seconds, "at most 20"))
        if "missing_path" in parts:
            seconds, answer = missing_path_seconds(env, args.repeats)
            rows.append((f"--path missing/ (median of {args.repeats}; {answer})", seconds, "under 1"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n| what | seconds | target (s) |\n| --- | --- | --- |")
    for what, seconds, target in rows:
        print(f"| {what} | {seconds:.2f} | {target} |")
    if timeline:
        print("\nThe first run's lines (seconds after the command):")
        for seconds, line in timeline:
            print(f"  {seconds:6.1f}  {line[:110]}")
    print(f"\nload average {os.getloadavg()[0]:.2f} after")
    return 0


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
