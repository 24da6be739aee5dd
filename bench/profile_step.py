"""Where the time of a training step goes: the TensorFlow profiler's op totals for one model.

  python bench/profile_step.py --model fast --batch_size 8 [--precision float32] [--steps_per_call 0]

Builds the trainer as `train.py` does, warms the compiled step, records --seconds of
calls of it with `tf.profiler.experimental` (the trace also lands in --logdir for
TensorBoard's profile plugin), and prints the ops by total time on the CPU: op type,
share of the traced time, calls, and microseconds per call. --steps_per_call 0 runs
calls of about a second, as the training loop does; 1 runs one step a call, as it did
before issue 23. Used for BENCHMARKS.md, "Profile of the small-batch step".
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from illustration_gan import config as config_lib  # noqa: E402
from illustration_gan import training  # noqa: E402


def op_totals(logdir: str) -> tuple[collections.Counter, collections.Counter, float]:
    """(microseconds by op type, calls by op type, traced microseconds) from the host plane of the
    newest trace. The executor's threads (lines named tf_Compute/...) record an event per op kernel
    named 'scope/name:Type' (oneDNN kernels are '_Mkl...' types) inside 'ExecutorState::Process'
    events, which are left out, as are the Python thread's function-call events."""
    (path,) = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1:]
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    seconds, calls = collections.Counter(), collections.Counter()
    first, last = None, None
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                op_type = name.rsplit(":", 1)[1] if ":" in name else ""
                if not op_type or op_type == "Process":
                    continue
                seconds[op_type] += event.duration_ps / 1e6
                calls[op_type] += 1
                start = line.timestamp_ns * 1000 + event.offset_ps
                first = start if first is None else min(first, start)
                last = start + event.duration_ps if last is None else max(last, start + event.duration_ps)
    return seconds, calls, ((last or 0) - (first or 0)) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fast")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--steps_per_call", type=int, default=0, help="0: calls of about a second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--logdir", default="")
    args = parser.parse_args()
    config = config_lib.resolve(args.model, dict(batch_size=args.batch_size, image_size=args.image_size,
                                                 precision=args.precision))
    trainer = training.GANTrainer(config, tf.distribute.get_strategy())
    real = tf.random.uniform((args.batch_size, args.image_size, args.image_size, 3), -1, 1, seed=0)
    iterator = iter(tf.data.Dataset.from_tensors(real).repeat())
    steps = args.steps_per_call or 1
    for _ in range(3):
        started = time.perf_counter()
        trainer.train_steps(iterator, tf.constant(steps))[1].numpy()
        if not args.steps_per_call:
            steps = max(1, min(1000, round(steps / (time.perf_counter() - started))))
    logdir = args.logdir or tempfile.mkdtemp(prefix="profile-step-")
    done, started = 0, time.perf_counter()
    tf.profiler.experimental.start(logdir)
    while time.perf_counter() - started < args.seconds:
        sums, ran, _ = trainer.train_steps(iterator, tf.constant(steps))
        {k: float(v) for k, v in sums.items()}
        done += int(ran)
    wall = time.perf_counter() - started
    tf.profiler.experimental.stop()
    totals, calls, traced = op_totals(logdir)
    busy = sum(totals.values())
    print(f"{args.model} batch {args.batch_size} {args.precision}, {steps} step(s) a call: {done} steps in "
          f"{wall:.1f} s = {done * args.batch_size / wall:.1f} images/s (profiled); op time {busy / 1e6:.2f} s "
          f"over {traced / 1e6:.2f} s traced; trace in {logdir}")
    print("| op | share of op time | calls a step | us a call |")
    print("| --- | --- | --- | --- |")
    for op, micros in totals.most_common(args.top):
        print(f"| {op} | {micros / busy:.1%} | {calls[op] / max(done, 1):.1f} | {micros / calls[op]:.0f} |")


if __name__ == "__main__":
    main()
