"""What the machine can do fast: the precision and decoding dtype that fit it, and its cores shared.

bf16 where the hardware computes bf16 natively (CPUs with ``avx512_bf16`` or AMX, GPUs that
support it), fp32 elsewhere: on a CPU without native bf16, bf16 is emulated and slower.

Torch threads: every tonetune process that computes with torch signs in on this machine (a file
named by its PID, touched whenever it works) and takes an equal share of the cores, re-read whenever
work starts (a decode batch, a training step; at most once a second). A process counts while it is
alive and has worked in the last minute, so an idle server gives its share back. Two processes
that each take every core can slow each other far more than twice (an issue measured 15x on 2
cores), as a server and a synthesis against it, or a sweep's parallel runs, would.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

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


def best_decode_dtype(flags: frozenset[str] | None = None) -> str:
    """The dtype the generation engine decodes in: ``bfloat16`` where the CPU has it natively.

    The engine decodes on the CPU (only a 4-bit model sits on the GPU, and it is never cast), so
    the CPU decides: elsewhere ``float32``.
    """
    native = any(flag in (cpu_flags() if flags is None else flags) for flag in BF16_CPU_FLAGS)
    return "bfloat16" if native else "float32"


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


THREADS_ENV = "TONETUNE_THREADS"
"""A fixed torch thread count for this process (no sharing); ``OMP_NUM_THREADS`` set by you counts too."""
REGISTRY_ENV = "TONETUNE_THREADS_DIR"
"""Where the processes sign in (default: ``<tmp>/tonetune-<uid>/torch-processes``)."""
RECHECK_SECONDS = 1.0
IDLE_SECONDS = 60.0
"""A process that has not worked for this long no longer counts (an idle server, a reused PID)."""
_state: dict[str, float | int] = {"pid": 0, "checked": 0.0, "threads": 0}


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def registry() -> Path:
    """The folder where tonetune's torch processes on this machine sign in."""
    default = Path(tempfile.gettempdir()) / f"tonetune-{os.getuid()}" / "torch-processes"
    return Path(os.environ.get(REGISTRY_ENV) or default)


def torch_processes() -> list[int]:
    """PIDs of the signed-in processes alive and at work (the entries of ended ones are removed)."""
    working, now = [], time.time()
    for entry in registry().glob("*"):
        try:
            idle = now - entry.stat().st_mtime
        except FileNotFoundError:  # removed meanwhile by its process
            continue
        if not (entry.name.isdigit() and _alive(int(entry.name))):
            entry.unlink(missing_ok=True)
        elif idle < IDLE_SECONDS:
            working.append(int(entry.name))
    return sorted(working)


def share_threads(force: bool = False) -> int:
    """Set torch's thread count to this process's share of the cores (signing in first); return it."""
    import torch

    fixed = os.environ.get(THREADS_ENV) or os.environ.get("OMP_NUM_THREADS")
    if fixed:
        return torch.get_num_threads() if _state["threads"] else _set(torch, int(fixed), "fixed")
    now = time.monotonic()
    if not force and _state["pid"] == os.getpid() and now - _state["checked"] < RECHECK_SECONDS:
        return torch.get_num_threads()
    _sign_in()
    _state["checked"] = now
    processes = max(1, len(torch_processes()))
    return _set(torch, max(1, usable_cores() // processes), f"{processes} tonetune torch processes")


def _set(torch, threads: int, why: str) -> int:
    if threads != _state["threads"]:
        log.info("torch threads: %d of %d cores (%s)", threads, usable_cores(), why)
        _state["threads"] = threads
    if torch.get_num_threads() != threads:  # per calling thread: a web page's worker threads too
        torch.set_num_threads(threads)
    return threads


def _sign_in() -> None:
    """Touch this process's entry in the registry (created on first use, removed when it exits)."""
    pid = os.getpid()
    folder = registry()
    folder.mkdir(parents=True, exist_ok=True)
    entry = folder / str(pid)
    entry.touch()
    if _state["pid"] != pid:  # first time here (or a forked child: its own entry)
        atexit.register(_sign_out, entry, pid)
        _state.update(pid=pid, threads=0)


def _sign_out(entry: Path, pid: int) -> None:
    if os.getpid() == pid:  # not a forked child exiting with its parent's handler
        entry.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or another user's (the registry is per user)
        return False
    return True
