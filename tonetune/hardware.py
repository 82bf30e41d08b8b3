"""What the machine can do fast: the training precision and the decoding dtype that fit its CPU or GPU.

bf16 where the hardware computes bf16 natively (CPUs with ``avx512_bf16`` or AMX, GPUs that
support it), fp32 elsewhere: on a CPU without native bf16, bf16 is emulated and slower.
"""

from __future__ import annotations

import functools
from pathlib import Path

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
MIXED, FULL = "bf16-mixed", "32-true"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def gpu_bf16() -> bool:
    """Whether a CUDA GPU is present and computes bf16."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def best_precision(accelerator: str, flags: frozenset[str] | None = None, gpu: bool | None = None) -> str:
    """Lightning's ``precision`` for ``accelerator`` on this machine: ``bf16-mixed`` or ``32-true``."""
    if accelerator in {"gpu", "cuda", "auto"} and (gpu_bf16() if gpu is None else gpu):
        return MIXED
    if accelerator in {"cpu", "auto"}:
        flags = cpu_flags() if flags is None else flags
        return MIXED if any(flag in flags for flag in BF16_CPU_FLAGS) else FULL
    return FULL


def best_decode_dtype(flags: frozenset[str] | None = None, gpu: bool | None = None) -> str:
    """The dtype the generation engine decodes in: ``bfloat16`` where it is native, else ``float32``."""
    native_cpu = any(flag in (cpu_flags() if flags is None else flags) for flag in BF16_CPU_FLAGS)
    return "bfloat16" if native_cpu or (gpu_bf16() if gpu is None else gpu) else "float32"


def precision_reason(precision: str, accelerator: str) -> str:
    """One line for the log: which precision and why."""
    native = [flag for flag in BF16_CPU_FLAGS if flag in cpu_flags()]
    if accelerator not in {"cpu", "auto"}:
        why = "trainer.precision"
    elif native:
        why = f"the CPU computes bf16 natively: {', '.join(native)}"
    else:
        why = "the CPU has no native bf16 (no avx512_bf16 or AMX), where bf16 is emulated and slower"
    other = FULL if precision == MIXED else MIXED
    return f"precision={precision} ({why}; trainer.precision={other} overrides it)"
