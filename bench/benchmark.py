"""Speed and memory of every model on this machine: python bench/benchmark.py

First, when torch is importable (`pip install -e ".[bench]"`), the PyTorch DCGAN
tutorial's loop (bench/torch_dcgan.py: same batch, every core, float32), so every
rate below is also given as a ratio to a baseline timed in the same run. Then per
model preset at --image_size (64) and --batch_size (64), after warm-up:
  - training images/s as the training loop runs it (several steps per call of the
    compiled step, about a second's worth) and with one step per call (as before
    issue 23), timed in 3 interleaved rounds of 2 s or more (the median round), and achieved GFLOP/s from counted FLOPs per training image
    (FLOPs of one forward pass of G and of D counted by the TensorFlow profiler;
    a training image costs 3 x (G + 2 D): forward plus a backward of twice the
    forward, with D run on a real and a fake image);
  - generation images/s (inference, batch 64);
and once:
  - the input pipeline alone (read, decode, resize, flip, batch; no cache) in images/s
    on ../shared/data/anime_faces, and its ratio to the fastest model's training rate;
  - peak resident memory of a real training run (train.py, DCGAN 64x64, batch 64) in a child process.
Writes the table to BENCHMARKS.md (--write) and prints it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FACES = ROOT.parent / "shared" / "data" / "anime_faces"

import tensorflow as tf  # noqa: E402

from illustration_gan import config as config_lib  # noqa: E402
from illustration_gan import data, training  # noqa: E402


def forward_flops(model, input_shape) -> float:
    """FLOPs of one forward pass for one example, counted by the TF profiler on the traced graph."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec((1, *input_shape), tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=frozen.graph, options=options)
    return float(info.total_float_ops)


def machine() -> str:
    from illustration_gan.training import precision

    return (f"{precision.machine()}, {precision.usable_cores()} cores, {platform.system()} {platform.release()}, "
            f"TensorFlow {tf.__version__}")


def time_pytorch(batch: int, steps: int) -> dict | None:
    """The PyTorch DCGAN tutorial loop's rate in a child process, or None without torch."""
    import importlib.util
    import json

    if importlib.util.find_spec("torch") is None:
        return None
    from illustration_gan.training import precision

    command = [sys.executable, str(ROOT / "bench" / "torch_dcgan.py"), "--batch_size", str(batch),
               "--threads", str(precision.usable_cores()), "--steps", str(max(steps, 10))]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


ROUNDS = 3  # timing rounds per model; the median counts


def time_training(preset: str, image_size: int, batch: int, steps: int, extra: dict) -> dict:
    config = config_lib.resolve(preset, {"image_size": image_size, "batch_size": batch, **extra})
    batch = config.training.batch_size
    strategy = tf.distribute.get_strategy()
    trainer = training.GANTrainer(config, strategy)
    real = tf.random.uniform((batch, image_size, image_size, 3), -1, 1, seed=0)
    iterator = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(real).repeat()))
    for _ in range(3):  # trace, compile, warm caches
        float(trainer.train_step(iterator)["d_loss"])
    started = time.perf_counter()
    for _ in range(steps):
        float(trainer.train_step(iterator)["d_loss"])
    # As the loop runs it now: calls of about a second (training/loop.py, Pace).
    per_call = max(1, min(1000, round(steps / (time.perf_counter() - started))))
    for _ in range(2):
        trainer.train_steps(iterator, tf.constant(per_call))[1].numpy()
    single, several = [], []
    for _ in range(ROUNDS):  # interleaved, so a machine that slows down mid-way slows both alike
        done, started = 0, time.perf_counter()
        while done < steps or time.perf_counter() - started < 2.0:  # one step a call, every metric read
            {k: float(v) for k, v in trainer.train_step(iterator).items()}  # back, as before issue 23
            done += 1
        single.append(done * batch / (time.perf_counter() - started))
        calls, started = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - started < 2.0:
            sums, _, _ = trainer.train_steps(iterator, tf.constant(per_call))
            {k: float(v) for k, v in sums.items()}
            calls += 1
        several.append(calls * per_call * batch / (time.perf_counter() - started))
    single_rate, train_rate = sorted(single)[ROUNDS // 2], sorted(several)[ROUNDS // 2]

    generate = tf.function(lambda z: trainer.generator(z, training=False))
    z = trainer.generator.sample_latents(batch, tf.constant([1, 2], tf.int64))
    for _ in range(2):
        generate(z).numpy()
    started = time.perf_counter()
    for _ in range(steps):
        out = generate(z)
    out.numpy()
    generate_rate = steps * batch / (time.perf_counter() - started)

    g_flops = forward_flops(trainer.generator, (config.model.z_dim,))
    d_flops = forward_flops(trainer.discriminator, (image_size, image_size, 3))
    train_flops = 3 * (g_flops + 2 * d_flops)
    if trainer.networks.z_predictor is not None:
        train_flops += 3 * forward_flops(trainer.networks.z_predictor, (4 * 4 * 512,))
    return {
        "model": preset + (" " + " ".join(f"{k}={v}" for k, v in extra.items()) if extra else ""),
        "train_img_s": train_rate,
        "single_img_s": single_rate,
        "per_call": per_call,
        "gflop_per_img": train_flops / 1e9,
        "gflop_s": train_rate * train_flops / 1e9,
        "generate_img_s": generate_rate,
    }


def time_input_pipeline(image_size: int, batch: int, images: int) -> float:
    source = data.scan(str(FACES))
    ds = data.training_dataset(source, image_size, batch, seed=0, cache=False)
    batches = images // batch
    it = iter(ds)
    next(it)
    started = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - started)


def peak_training_memory(image_size: int, batch: int, seconds: float) -> float:
    """Peak RSS (GiB) of `train.py` training DCGAN on the shared faces for a while.

    The child reports its own high-water mark (VmHWM, which exec resets). Neither the parent's
    RUSAGE_CHILDREN nor the child's own ru_maxrss will do: Linux carries the forked copy of this
    (large) benchmark process's resident pages into both across exec (4.51 GiB printed once).
    """
    run_root = Path("/tmp") / f"bench-runs-{os.getpid()}"
    argv = ["train.py", "--TYPE", "train", "--path", str(FACES), "--model", "dcgan", "--image_size", str(image_size),
            "--batch_size", str(batch), "--epochs", "1", "--max_minutes", str(seconds / 60), "--run_root", str(run_root)]
    wrapper = (
        "import runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        "try:\n    runpy.run_path('train.py', run_name='__main__')\n"
        "finally:\n    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "    print('PEAK_RSS_KB', hwm[0], file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", wrapper], cwd=ROOT, capture_output=True, text=True)
    peak = [line.split()[1] for line in result.stderr.splitlines() if line.startswith("PEAK_RSS_KB")]
    if not peak:
        raise RuntimeError(f"train.py did not report its memory:\n{result.stderr[-2000:]}")
    return int(peak[-1]) / 2**20


def _parse_value(text: str):
    """'True'/'False' -> bool, '8' -> int, '1e-4' -> float, anything else stays a string."""
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--models", default="dcgan,illustration,wgan,dense,fast")
    parser.add_argument("--variants",
                        default="dcgan:precision=mixed_bfloat16,fast:precision=mixed_bfloat16,fast:batch_size=8,"
                                "fast:batch_size=8;precision=mixed_bfloat16",
                        help="extra rows: preset:field=value[;field=value], comma separated")
    parser.add_argument("--memory_seconds", type=float, default=90)
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    torch = time_pytorch(args.batch_size, args.steps * 2)
    if torch:
        print(f"PyTorch DCGAN tutorial loop (torch {torch['torch']}, {torch['threads']} threads, batch "
              f"{torch['batch_size']}, float32): {torch['images_per_second']:.1f} images/s", flush=True)
    rows = [time_training(m, args.image_size, args.batch_size, args.steps, {}) for m in args.models.split(",") if m]
    for variant in filter(None, args.variants.split(",")):
        preset, _, fields = variant.partition(":")
        extra = {}
        for item in filter(None, fields.split(";")):
            key, value = item.split("=")
            extra[key] = _parse_value(value)
        rows.append(time_training(preset, args.image_size, args.batch_size, args.steps, extra))
        import keras

        keras.mixed_precision.set_global_policy("float32")
    pipeline = time_input_pipeline(args.image_size, args.batch_size, 3000) if FACES.exists() else float("nan")
    memory = peak_training_memory(args.image_size, args.batch_size, args.memory_seconds) if FACES.exists() else float("nan")
    load_after = os.getloadavg()[0]

    fastest = max(r["train_img_s"] for r in rows)
    dcgan = next((r for r in rows if r["model"] == "dcgan"), None)  # the FLOP-share column needs its row
    baseline = torch["images_per_second"] if torch else float("nan")
    lines = [
        "| model | train img/s | vs PyTorch tutorial | steps a call | img/s at 1 step a call | GFLOP per training image "
        "| achieved GFLOP/s | rate vs FLOP share of DCGAN | generate img/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    if torch:
        lines.append(f"| PyTorch DCGAN tutorial loop (torch {torch['torch']}) | {baseline:.1f} | 1.00x | 1 | "
                     f"{baseline:.1f} | | | | |")
    for r in rows:
        share = ""
        if dcgan:
            share = f"{r['train_img_s'] * r['gflop_per_img'] / (dcgan['train_img_s'] * dcgan['gflop_per_img']):.2f}x"
        lines.append(
            f"| {r['model']} | {r['train_img_s']:.1f} | {r['train_img_s'] / baseline:.2f}x | {r['per_call']} | "
            f"{r['single_img_s']:.1f} | {r['gflop_per_img']:.2f} | {r['gflop_s']:.0f} | "
            f"{share} | {r['generate_img_s']:.0f} |"
        )
    summary = [
        f"Input pipeline (read, decode, resize to {args.image_size}, flip, batch {args.batch_size}; no cache): "
        f"{pipeline:.0f} images/s = {pipeline / fastest:.1f}x the fastest model's training rate.",
        f"Peak resident memory of `train.py` (DCGAN {args.image_size}x{args.image_size}, batch {args.batch_size}, "
        f"{args.memory_seconds:.0f} s of training on the shared faces): {memory:.2f} GiB.",
        f"Load average (1 min) before/after: {load_before:.1f} / {load_after:.1f} on {os.cpu_count()} cores.",
    ]
    text = "\n".join(lines + [""] + summary)
    print(text)
    if args.write:
        command = "python bench/benchmark.py " + " ".join(sys.argv[1:])
        header = (f"# Benchmarks\n\nMeasured {datetime.date.today()} on {machine()} with\n`{command}`\n"
                  f"(image size {args.image_size}, batch {args.batch_size}, float32 unless noted).\n\n")
        path = ROOT / "BENCHMARKS.md"
        old = path.read_text() if path.exists() else ""
        marker = "<!-- benchmark.py -->"
        notes = old.split(marker, 1)[1] if marker in old else ""
        path.write_text(header + text + "\n\n" + marker + notes)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
