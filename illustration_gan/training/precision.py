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
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import os
import platform
import time

import tensorflow as tf

MARGIN = 1.05  # a lower precision must be at least 5% faster than float32 to be chosen
WARM_CALLS = 2  # calls before timing: the first traces and compiles, the second warms the caches
ROUNDS, ROUND_SECONDS = 3, 0.7  # each round times every candidate in turn
# Part of the cache key: raise it when a code change alters how fast a policy runs (2: bfloat16
# kernel gradients as one matmul at small maps, networks/matmul_grad.py; 3: one G forward a step
# on one device, training/step.py, and fused batch norm in bfloat16, networks/fused_batch_norm.py).
STEP_VERSION = 3


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


def _cache_path(config, replicas: int) -> str:
    from illustration_gan import cache_root

    key = json.dumps(dict(machine=machine(), tf=tf.__version__, step=STEP_VERSION, replicas=replicas,
                          strategy=config.strategy, model=dataclasses.asdict(config.model),
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
        log(f"precision auto: {record['chosen']} ({_rates(record)}; timed {record['timed']} on this machine and "
            f"model, cached in {path})")
        return record["chosen"], record
    rates = time_policies([dataclasses.replace(config, precision=p) for p in candidates()], strategy,
                          make_iterator, log)
    chosen = max(rates, key=lambda p: rates[p] / (1.0 if p == "float32" else MARGIN))
    record = {"chosen": chosen, "images_per_second": {p: round(r, 1) for p, r in rates.items()},
              "machine": machine(), "timed": time.strftime("%Y-%m-%d %H:%M"),
              "load_average": round(os.getloadavg()[0], 2)}
    log(f"precision auto: {chosen} ({_rates(record)}; timed now, cached in {path})")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f, indent=1)
        os.replace(path + ".tmp", path)
    except OSError:  # an unwritable cache costs only the timing next time
        pass
    return chosen, record


def _rates(record: dict) -> str:
    return ", ".join(f"{p} {r:.0f} img/s" for p, r in record.get("images_per_second", {}).items())


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
