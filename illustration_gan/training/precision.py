"""`precision="auto"`: the dtype policy that trains this run's model fastest on this machine.

Whether bfloat16 pays depends on the CPU: with AMX or AVX-512 BF16 (Intel Xeon, 4th
generation on) Keras' `mixed_bfloat16` ran our DCGAN 2x faster than float32, while on
an AMD EPYC without them it was slower (issue 23). So the choice is measured, not
assumed: the run's own compiled step is built at each candidate policy (float32 and
mixed_bfloat16; mixed_float16 too where a GPU is present), warmed, and timed in
`ROUNDS` interleaved rounds (a machine that slows down half-way through slows every
candidate alike; the median round counts), and the fastest wins if it beats float32 by `MARGIN` (timing noise should not flip a run to
a lower precision). The timings and the choice are logged and kept in
training_options.json (`precision_auto`), and cached per machine and model
(`cache_root()/precision/`), so the next run of the same model here starts at once;
delete the cache file to time again.

Thread pools are part of the same choice. One thread an op and two ops at a time ran
`fast` at batch 8 in bfloat16 1.14-1.28x faster on an Intel Xeon with AMX, and batch 64
0.82-0.85x as fast (BENCHMARKS.md, "Profile of the small-batch step" and "Thread pools").
TensorFlow fixes its pools when
it starts, so `choose_threads` times the policies under each of `THREADS` in child processes
(`python -m illustration_gan.training.precision`, alternating, `CHILD_ROUNDS` each) before
the run's own TensorFlow starts, and caches the fastest pair; `choose` then reads the
policy from that cache. Runs on one core, on several replicas or with a forced precision
keep TensorFlow's pools.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import os
import platform
import subprocess
import sys
import time

import tensorflow as tf

MARGIN = 1.05  # a lower precision must be at least 5% faster than float32 to be chosen
WARM_CALLS = 2  # calls before timing: the first traces and compiles, the second warms the caches
ROUNDS, ROUND_SECONDS = 3, 0.7  # each round times every candidate in turn
# Part of the cache key: raise it when a code change alters how fast a policy runs (2: bfloat16
# kernel gradients as one matmul at small maps, networks/matmul_grad.py; 3: one G forward a step
# on one device, training/step.py, and fused batch norm in bfloat16, networks/fused_batch_norm.py).
STEP_VERSION = 4  # 4: thread pools timed too
# (intra-op, inter-op) threads; 0 leaves the count to TensorFlow (the cores).
THREADS = {"default": (0, 0), "intra 1, inter 2": (1, 2)}
CHILD_TIMEOUT = 900  # seconds for one child's timing
CHILD_ROUNDS = 2  # child processes per entry of THREADS, alternating; $ILLUSTRATION_GAN_CHILD_ROUNDS overrides


def candidates() -> list[str]:
    policies = ["float32", "mixed_bfloat16"]
    if tf.config.list_physical_devices("GPU"):
        policies.append("mixed_float16")
    return policies


def machine() -> str:
    """The CPU model and the instruction sets that decide the matter, e.g. 'Intel(R) Xeon(R)
    Processor [avx512f avx512_bf16 amx_bf16]'."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16") if f in flags]
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return f"{name} [{' '.join(wanted)}]" + (f" + {len(gpus)} GPU(s)" if gpus else "")


def usable_cores() -> int:
    """The cores this process may run on (`taskset` and container limits included)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cache_path(config, replicas: int) -> str:
    from illustration_gan import cache_root

    # The cores are part of the key: a timing taken on one core (`taskset -c 0`) must not
    # choose the precision and thread pools of a run on two.
    key = json.dumps(dict(machine=machine(), cores=usable_cores(), tf=tf.__version__, step=STEP_VERSION,
                          replicas=replicas, strategy=config.strategy, model=dataclasses.asdict(config.model),
                          training=dataclasses.asdict(config.training)),
                     sort_keys=True)
    return os.path.join(cache_root(), "precision", hashlib.sha256(key.encode()).hexdigest()[:20] + ".json")


def choose(config, strategy, make_iterator, log) -> tuple[str, dict]:
    """The policy for `config` (whose precision is "auto") and the record of how it was chosen."""
    from illustration_gan import distribute

    if distribute.is_multiworker(strategy):
        record = {"chosen": "float32", "reason": "not timed under multiworker (every worker must choose the same)"}
        log(f"precision auto: float32 ({record['reason']}; force another with --precision)")
        return "float32", record
    path = _cache_path(config, strategy.num_replicas_in_sync)
    if os.path.exists(path):
        with open(path) as f:
            record = json.load(f)
        rates = _rates(record.get("images_per_second", {}))
        log(f"precision auto: {record['chosen']} ({rates}{_threads_note(record)}; timed {record['timed']} "
            f"on this machine and model, cached in {path})")
        return record["chosen"], record
    rates = time_policies([dataclasses.replace(config, precision=p) for p in candidates()], strategy,
                          make_iterator, log)
    record = _record({"default": rates})
    log(f"precision auto: {record['chosen']} ({_rates(record['images_per_second'])}; timed now, cached in {path})")
    _write_cache(path, record)
    return record["chosen"], record


def _record(by_threads: dict[str, dict[str, float]]) -> dict:
    """The cached record of a timing: the fastest pair (`fastest`), its rates, and every rate
    by thread-pool setting when more than one was timed."""
    label, chosen = fastest(by_threads)
    rounded = {t: {p: round(r, 1) for p, r in rates.items()} for t, rates in by_threads.items()}
    record = {"chosen": chosen, "images_per_second": rounded[label], "machine": machine(),
              "timed": time.strftime("%Y-%m-%d %H:%M"), "load_average": round(os.getloadavg()[0], 2)}
    if len(by_threads) > 1 or label != "default":
        record.update(threads=label, by_threads=rounded)
    return record


def _write_cache(path: str, record: dict) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f, indent=1)
        os.replace(path + ".tmp", path)
    except OSError:  # an unwritable cache costs only the timing next time
        pass


def _rates(rates: dict) -> str:
    return ", ".join(f"{p} {r:.0f} img/s" for p, r in rates.items())


def _threads_note(record: dict) -> str:
    others = {label: rates for label, rates in record.get("by_threads", {}).items() if label != record["threads"]}
    if not others:
        return ""
    return f"; threads {record['threads']}" + "".join(f"; with threads {label}: {_rates(rates)}"
                                                     for label, rates in others.items())


# ---------------------------------------------------------------- thread pools, before TensorFlow starts


def choose_threads(config, path: str, log, recorded: dict | None = None) -> tuple[int, int]:
    """Sets this process's thread pools to the fastest of `THREADS` for `config` and returns them.

    Call it before TensorFlow runs anything. `recorded` is a resumed run's `precision_auto`
    record, whose threads it keeps.
    """
    if recorded is not None:
        if "threads" not in recorded:  # a forced precision, or timed before the pools were
            return THREADS["default"]
        label = recorded["threads"]
    elif not _timed_here(config, path):
        return THREADS["default"]
    else:
        cache = _cache_path(config, 1)
        if not os.path.exists(cache):
            _time_in_children(config, path, cache, log)
        try:
            with open(cache) as f:
                label = json.load(f).get("threads", "default")
        except (OSError, ValueError):  # no children's timing: `choose` times in-process with the default pools
            label = "default"
    label = label if label in THREADS else "default"
    log(f"thread pools: {label} (intra-op, inter-op threads; "
        f"{'as this run was timed' if recorded is not None else 'the faster when timed'})")
    return set_threads(THREADS[label])


def _timed_here(config, path: str) -> bool:
    """Whether `choose_threads` times this run: "auto" on the default strategy, no GPU, more than
    one core, and a local folder with at least a batch of images (a folder that fails those
    checks gets `data.scan`'s error first; TFRecord shards and cloud storage keep the default)."""
    from illustration_gan import data

    if config.precision != "auto" or config.strategy != "default" or usable_cores() < 2:
        return False
    if tf.config.list_physical_devices("GPU") or not os.path.isdir(path):
        return False
    return len(data.list_image_files(path)) >= config.training.batch_size


def set_threads(threads: tuple[int, int]) -> tuple[int, int]:
    intra, inter = threads
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    return threads


def _time_in_children(config, path: str, cache: str, log) -> None:
    """Times every policy under every entry of `THREADS`, each in its own process, in
    `child_rounds()` alternating rounds (a machine whose speed drifts between processes drifts
    for every entry alike; the mean counts), and caches the fastest pair (a lower precision and
    non-default threads must each win by `MARGIN`)."""
    rounds = child_rounds()
    samples, failed = {}, set()
    for round_ in range(rounds):
        for label, threads in THREADS.items():
            if label in failed:
                continue
            log(f"precision auto: timing {', '.join(candidates())} with threads {label} in a child process "
                f"({round_ + 1}/{rounds})")
            rates, why = time_in_child(config, path, threads)
            if rates is None:
                log(f"precision auto: the timing with threads {label} failed ({why}); not a candidate")
                failed.add(label)
                continue
            for policy, rate in rates.items():
                samples.setdefault(label, {}).setdefault(policy, []).append(rate)
    by_threads = {label: {policy: sum(values) / len(values) for policy, values in rates.items()}
                  for label, rates in samples.items() if label not in failed}
    if not by_threads:
        return
    _write_cache(cache, _record(by_threads))


def child_rounds() -> int:
    """`CHILD_ROUNDS`, or $ILLUSTRATION_GAN_CHILD_ROUNDS (1 halves the start-up timing where a
    machine's speed holds still; the tests use it)."""
    value = os.environ.get("ILLUSTRATION_GAN_CHILD_ROUNDS", "")
    if not value:
        return CHILD_ROUNDS
    if not value.isdigit() or int(value) < 1:
        from illustration_gan import UserError

        raise UserError(f"ILLUSTRATION_GAN_CHILD_ROUNDS={value!r}: give a whole number of at least 1")
    return int(value)


def time_in_child(config, path: str, threads: tuple[int, int]) -> tuple[dict | None, str]:
    """Images per second of each policy of `candidates()` for `config` in a new process with
    `threads`, or None and the child's last line of error."""
    command = [sys.executable, "-m", "illustration_gan.training.precision", "--threads", "%d,%d" % threads,
               "--path", path]
    try:
        done = subprocess.run(command, input=json.dumps(config.to_json()), capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, f"no answer in {CHILD_TIMEOUT} s"
    try:
        return json.loads(done.stdout.strip().splitlines()[-1]), ""
    except (ValueError, IndexError):
        return None, (done.stderr.strip().splitlines() or ["no output"])[-1][:200]


def fastest(by_threads: dict[str, dict[str, float]]) -> tuple[str, str]:
    """The (threads, policy) pair with the most images per second, where a lower precision than
    float32 and threads other than the default must each win by `MARGIN`."""
    def score(pair):
        label, policy = pair
        rate = by_threads[label][policy]
        return rate / (MARGIN if policy != "float32" else 1.0) / (MARGIN if label != "default" else 1.0)

    return max(((label, policy) for label, rates in by_threads.items() for policy in rates), key=score)


def _child(argv: list[str]) -> int:
    """The timing of one entry of `THREADS` (see `_time_in_children`): the config as JSON on stdin,
    the images per second of each policy as JSON on the last line of stdout."""
    import argparse

    from illustration_gan import data
    from illustration_gan.config import Config
    from illustration_gan.training import loop

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", required=True, help="intra,inter")
    parser.add_argument("--path", required=True)
    args = parser.parse_args(argv)
    set_threads(tuple(int(n) for n in args.threads.split(",")))
    config = Config.from_json(json.loads(sys.stdin.read()))
    source = data.scan(args.path)
    strategy = tf.distribute.get_strategy()
    rates = time_policies([dataclasses.replace(config, precision=p) for p in candidates()], strategy,
                          lambda c: iter(loop.training_batches(c, source, strategy, 0)),
                          lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(rates), flush=True)
    return 0


def time_policies(configs, strategy, make_iterator, log) -> dict[str, float]:
    """Images per second of each config's compiled step (by its precision): every trainer is built
    and warmed first, then each round times every one in turn; the median round counts."""
    import keras

    from illustration_gan.training.step import GANTrainer

    previous = keras.mixed_precision.global_policy()
    runs = {}
    try:
        for config in configs:
            try:
                trainer = GANTrainer(config, strategy)  # sets the global policy its layers are built with
                iterator, steps = make_iterator(config), 1
                for _ in range(WARM_CALLS):
                    started = time.perf_counter()
                    trainer.train_steps(iterator, tf.constant(steps, tf.int32))[1].numpy()
                    steps = max(1, min(50, int(0.5 / max(time.perf_counter() - started, 1e-3))))
                runs[config.precision] = (trainer, iterator, steps, config.training.batch_size, [])
            except (tf.errors.OpError, ValueError, TypeError) as error:  # e.g. an op without a kernel for the dtype
                if config.precision == "float32":
                    raise  # not a precision's failure but the run's own: show it whole
                log(f"precision auto: {config.precision} failed ({str(error).strip().splitlines()[0][:120]}); "
                    "not a candidate")
            finally:
                keras.mixed_precision.set_global_policy(previous)
        for _ in range(ROUNDS):
            for trainer, iterator, steps, batch, rates in runs.values():
                done, started = 0, time.perf_counter()
                while time.perf_counter() - started < ROUND_SECONDS:
                    done += int(trainer.train_steps(iterator, tf.constant(steps, tf.int32))[1])
                rates.append(done * batch / (time.perf_counter() - started))
        return {policy: sorted(run[4])[len(run[4]) // 2] for policy, run in runs.items()}
    finally:
        runs.clear()
        gc.collect()
        keras.mixed_precision.set_global_policy(previous)


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
