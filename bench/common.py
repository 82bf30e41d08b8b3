"""Shared pieces of the benchmarks: the shared data, peak memory, and the fp32 matmul ceiling."""

from __future__ import annotations

import json
import os
import resource
import time
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


def matmul_gflops(m: int = 512, k: int = 576, n: int = 1536, repeats: int = 200) -> float:
    """Sustained fp32 matmul speed on shapes like a small model's projections, in GFLOP/s."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(10):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * m * k * n * repeats / (time.perf_counter() - started) / 1e9
