"""Shared pieces of the benchmarks: the shared data, peak memory, the fp32 matmul ceiling, paired runs."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from tonetune.config import REPO_ROOT

SHARED_DATA = (
    Path(os.environ.get("TONETUNE_SHARED", REPO_ROOT.parent / "shared")) / "data" / "elon_musk_gpt4.jsonl"
)


def shared_rows(split: str) -> list[dict]:
    """Rows of the shared GPT-4 Elon Musk set for one split."""
    rows = [json.loads(line) for line in SHARED_DATA.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["split"] == split]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# One SmolLM2-135M block's projections (q, k, v, o, gate, up, down) as (in, out) features.
BLOCK_SHAPES = [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576)]


def matmul_gflops(tokens: int = 600, repeats: int = 30) -> float:
    """Sustained fp32 matmul speed on the model's own projection shapes, for a batch of ``tokens``.

    This is the ceiling of a training step: nearly all of its FLOPs are these matmuls.
    """
    pairs = [(torch.randn(tokens, k), torch.randn(k, n)) for k, n in BLOCK_SHAPES]
    flops = sum(2 * tokens * k * n for k, n in BLOCK_SHAPES)
    for a, b in pairs * 3:
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        for a, b in pairs:
            a @ b
    return flops * repeats / (time.perf_counter() - started) / 1e9


def measure_in_subprocess(
    module: str, framework: str, adapter: str, epochs: int, data: Path, *extra: str
) -> dict:
    """Run ``python -m <module> --worker <framework> [extra...]`` in its own process (its own peak memory).

    The worker prints one ``RESULT <json>`` line; its dict is returned.
    """
    args = ["--worker", framework, "--adapter", adapter, "--epochs", str(epochs), "--data", str(data), *extra]
    out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{framework} {adapter} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def alternating(runs: int, sides: Sequence[str], measure: Callable[[str], dict]) -> dict[str, list[dict]]:
    """``runs`` rounds of ``measure(side)`` for each side in turn, so a slow spell of a shared machine
    falls on both sides rather than on one."""
    results: dict[str, list[dict]] = {side: [] for side in sides}
    for _ in range(runs):
        for side in sides:
            results[side].append(measure(side))
    return results


def paired_ratio(ours: Sequence[float], theirs: Sequence[float]) -> str:
    """The median of the rounds' ratios, with their range and count (``1.52x (1.47-1.60x, 3 runs)``)."""
    ratios = sorted(a / b for a, b in zip(ours, theirs, strict=True))
    spread = f"{ratios[0]:.2f}-{ratios[-1]:.2f}x, " if len(ratios) > 1 else ""
    return f"{statistics.median(ratios):.2f}x ({spread}{len(ratios)} run{'s' if len(ratios) > 1 else ''})"


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen) -> None:
    """Return once ``url``'s ``/health`` answers; raise if ``process`` (its server) exits first."""
    import httpx

    while process.poll() is None:
        try:
            httpx.get(f"{url}/health")
            return
        except httpx.ConnectError:
            time.sleep(0.5)
    raise RuntimeError(f"the server at {url} exited with {process.returncode} before it answered")
