"""illustration_gan/training/precision.py: `--precision auto` decided from the machine, in process, before a build."""

from __future__ import annotations

import subprocess

import pytest

from illustration_gan import config as config_lib
from illustration_gan.training import precision

AMX, AVX512_BF16, NO_BF16 = {"avx2", "avx512f", "amx_bf16"}, {"avx2", "avx512f", "avx512_bf16"}, {"avx2", "avx512f"}


def _fast(**overrides):
    return config_lib.resolve("fast", {"precision": "auto", **overrides})


@pytest.mark.parametrize("flags, policy", [(AMX, "mixed_bfloat16"), (AVX512_BF16, "mixed_bfloat16"),
                                           (NO_BF16, "float32"), (set(), "float32")])
def test_auto_takes_bfloat16_where_the_cpu_has_amx_or_avx512_bf16_and_float32_elsewhere(flags, policy):
    choice = precision.choose(_fast(), cpu_flags=flags, cores=2, gpus=[])
    assert choice.policy == policy
    assert choice.reason.startswith("the CPU has neither") == (policy == "float32")  # the log line's reason


def test_auto_on_gpus_and_clusters_and_a_given_policy_is_kept():
    assert precision.choose(_fast(), cpu_flags=NO_BF16, cores=2, gpus=[(8, 0)]).policy == "mixed_float16"
    assert precision.choose(_fast(), cpu_flags=AMX, cores=2, gpus=[(8, 0), (6, 1)]).policy == "float32"  # the slowest
    assert precision.choose(_fast(strategy="multiworker"), cpu_flags=AMX, cores=2, gpus=[]).policy == "float32"
    given = precision.choose(_fast(precision="float32"), cpu_flags=AMX, cores=2, gpus=[])
    assert (given.policy, given.reason, given.threads) == ("float32", "given", precision.DEFAULT_THREADS)


def test_one_thread_an_op_only_for_bfloat16_at_small_batches_on_two_cores_with_amx():
    one_op = (1, 2)
    assert precision.choose(_fast(batch_size=8), cpu_flags=AMX, cores=2, gpus=[]).threads == one_op
    assert precision.choose(_fast(batch_size=4, precision="mixed_bfloat16"), cpu_flags=AMX, cores=2,
                            gpus=[]).threads == one_op  # a forced bfloat16 runs as fast as a chosen one
    for config, flags, cores in [(_fast(batch_size=64), AMX, 2),  # slower at batch 64
                                 (_fast(batch_size=8, precision="float32"), AMX, 2),  # no gain in float32
                                 (_fast(batch_size=8), AVX512_BF16, 2),  # no gain without AMX
                                 (_fast(batch_size=8), AMX, 1), (_fast(batch_size=8), AMX, 8),  # not measured
                                 (_fast(batch_size=8, strategy="mirrored"), AMX, 2)]:
        assert precision.choose(config, cpu_flags=flags, cores=cores, gpus=[]).threads == precision.DEFAULT_THREADS


def test_this_machine_is_decided_in_process_the_same_every_time(monkeypatch):
    def no_child(*args, **kwargs):
        raise AssertionError("precision auto started a process")

    monkeypatch.setattr(subprocess, "Popen", no_child)
    first = precision.choose(_fast(batch_size=8))
    assert first == precision.choose(_fast(batch_size=8))  # no timing: nothing to drift, nothing to cache
    name, flags = precision.cpu()
    on_gpu = bool(precision.gpu_capabilities())
    assert on_gpu or first.policy == ("mixed_bfloat16" if flags & set(precision.BFLOAT16_FLAGS) else "float32")
    assert name in precision.machine()
