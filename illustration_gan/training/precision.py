"""`--precision auto`: a run's dtype policy and thread pools, decided from the machine before anything is built.

bfloat16 where the CPU has the instructions that measured it faster. Keras' `mixed_bfloat16`
trained `dcgan` and `fast` 1.7-2.1x faster than float32 on an Intel Xeon with AMX (`amx_bf16`;
BENCHMARKS.md, top table) and 1.2-2.0x on an AMD EPYC with AVX-512 BF16 and no AMX
(`avx512_bf16`; BENCHMARKS.md, "The next machine" and "The AMD EPYC, afternoon"), and its
20-minute runs scored better FID than float32's at the same minutes (docs/experiments.md,
"Step speed and bfloat16"). On the project's first machine, an Intel Xeon whose flags were not
recorded, bfloat16 ran the DCGAN at 0.65x float32, and float16 slower still: TensorFlow's CPU
build has no float16 kernels (BENCHMARKS.md at a1522ff). So on a CPU: `mixed_bfloat16` when
/proc/cpuinfo lists `amx_bf16` or `avx512_bf16`, float32 otherwise. On a GPU the TensorFlow
mixed-precision guide (https://www.tensorflow.org/guide/mixed_precision, "Supported hardware")
recommends `mixed_float16` from compute capability 7.0; this project has not measured a GPU.
Under `--strategy multiworker` auto means float32: every worker must run the same policy, and
the workers may be different machines.

Thread pools: one thread an op and two ops at a time (TensorFlow's intra-op and inter-op pools
at 1 and 2) ran `fast` at batch 8 in bfloat16 faster than the default pools on the Intel Xeon
with AMX in every dedicated timing (1.28x, median of three alternating processes, each round
faster; 1.14x in the profile), and slower or equal at batch 64 and in float32 (BENCHMARKS.md,
"Thread pools" and "Profile of the small-batch step"). On the AMD EPYC without AMX the same
experiment gave 1.07x (one round of three slower) and the one timing in a run 0.92x
(docs/experiments.md, "Cutout on top of translation"): no gain to keep. So the rule takes
those pools for bfloat16 at batches of 8 or less on a CPU with AMX, on the default strategy
with exactly 2 usable cores (the only count measured); every other run keeps TensorFlow's
pools. TensorFlow fixes its pools when it starts: `choose_threads` sets them before that
(cli.py), and a resumed run keeps the pools it recorded. Until issue 48 both choices were
timed in child processes before each new configuration's first step (docs/experiments.md,
"Precision from CPU flags").
"""

from __future__ import annotations

import dataclasses
import os
import platform

BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of the CPUs where bfloat16 measured faster
FLOAT16_GPU = (7, 0)  # the compute capability from which the TensorFlow guide recommends mixed_float16
DEFAULT_THREADS = (0, 0)  # (intra-op, inter-op) threads; 0 leaves the count to TensorFlow (the cores)
SMALL_BATCH_THREADS, SMALL_BATCH, MEASURED_CORES = (1, 2), 8, 2


@dataclasses.dataclass(frozen=True)
class Choice:
    policy: str  # a Keras dtype policy
    threads: tuple[int, int]  # (intra-op, inter-op)
    reason: str  # why this policy, for the log

    def record(self) -> dict:
        """training_options.json's `precision_auto`: the policy, why, the machine, and the pools
        this process runs with (what `choose_threads` set, or TensorFlow's)."""
        import tensorflow as tf

        threads = [tf.config.threading.get_intra_op_parallelism_threads(),
                   tf.config.threading.get_inter_op_parallelism_threads()]
        return {"chosen": self.policy, "reason": self.reason, "machine": machine(), "threads": threads}


def choose(config, cpu_flags=None, cores: int | None = None, gpus=None) -> Choice:
    """The policy of `config` ("auto" decided here, any other kept) and the thread pools for it.

    `cpu_flags` (default: this CPU's, from /proc/cpuinfo), `cores` (default: `usable_cores()`)
    and `gpus` (the visible GPUs' compute capabilities, default: TensorFlow's list) describe
    the machine.
    """
    flags = cpu()[1] if cpu_flags is None else set(cpu_flags)
    cores = usable_cores() if cores is None else cores
    gpus = gpu_capabilities() if gpus is None else list(gpus)
    policy, reason = config.precision, "given"
    if policy == "auto":
        policy, reason = _policy(config.strategy, flags, gpus)
    small = config.training.batch_size <= SMALL_BATCH
    measured = "amx_bf16" in flags and cores == MEASURED_CORES and config.strategy == "default" and not gpus
    if policy == "mixed_bfloat16" and small and measured:
        return Choice(policy, SMALL_BATCH_THREADS, reason)
    return Choice(policy, DEFAULT_THREADS, reason)


def _policy(strategy: str, flags: set[str], gpus: list) -> tuple[str, str]:
    if strategy == "multiworker":
        return "float32", "multiworker: every worker must run the same policy"
    if gpus:
        lowest = min(tuple(g) for g in gpus)
        if lowest >= FLOAT16_GPU:
            return "mixed_float16", f"GPU of compute capability {lowest[0]}.{lowest[1]}"
        return "float32", f"GPU of compute capability {lowest[0]}.{lowest[1]}, below 7.0"
    found = [flag for flag in BFLOAT16_FLAGS if flag in flags]
    if found:
        return "mixed_bfloat16", f"the CPU has {' and '.join(found)}"
    return "float32", f"the CPU has neither {' nor '.join(BFLOAT16_FLAGS)}"


def choose_threads(config, log, recorded: dict | None = None) -> tuple[int, int]:
    """Sets this process's thread pools for `config` and returns them; call it before TensorFlow
    runs anything. `recorded` is a resumed run's `precision_auto` record, whose pools it keeps
    (records written before issue 48 name them differently and get the rule's)."""
    threads, why = tuple(choose(config).threads), "bfloat16 at a small batch on 2 cores with AMX"
    if recorded and isinstance(recorded.get("threads"), list) and len(recorded["threads"]) == 2:
        threads, why = tuple(recorded["threads"]), "as this run recorded"
    if threads == DEFAULT_THREADS:
        return threads
    log(f"thread pools: intra-op {threads[0]}, inter-op {threads[1]} ({why})")
    return set_threads(threads)


def set_threads(threads: tuple[int, int]) -> tuple[int, int]:
    import tensorflow as tf

    intra, inter = threads
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    return threads


def cpu() -> tuple[str, set[str]]:
    """The CPU's model name and flags, from /proc/cpuinfo (no flags where it cannot be read)."""
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
    return name, flags


def gpu_capabilities() -> list[tuple[int, int]]:
    """The compute capability of each GPU TensorFlow sees ((0, 0) where it reports none)."""
    import tensorflow as tf

    return [tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0))
            for gpu in tf.config.list_physical_devices("GPU")]


def machine() -> str:
    """The CPU model and the instruction sets that decide the matter, e.g. 'Intel(R) Xeon(R)
    Processor [avx512f avx512_bf16 amx_bf16]'."""
    name, flags = cpu()
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16") if f in flags]
    gpus = gpu_capabilities()
    return f"{name} [{' '.join(wanted)}]" + (f" + {len(gpus)} GPU(s)" if gpus else "")


def usable_cores() -> int:
    """The cores this process may run on (`taskset` and container limits included)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
