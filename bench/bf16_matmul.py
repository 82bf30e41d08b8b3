"""bf16 against fp32 matmul on this CPU at a SmolLM2-135M projection (what the precision default reads).

Run as:
    python -m bench.bf16_matmul

Prints each M x 576 by 576 x 1536 matmul's time in fp32 and bf16 (one thread, the same tensors)
and bf16's speed as a ratio of fp32's, beside whether the CPU has native bf16 (avx512_bf16 / AMX).
"""

from __future__ import annotations

import time

import torch

from tonetune.hardware import BF16_CPU_FLAGS, best_precision, cpu_flags


def seconds_per_matmul(a: torch.Tensor, b: torch.Tensor, budget: float = 1.5) -> float:
    """Mean seconds of ``a @ b`` over ``budget`` seconds (after a warm-up)."""
    for _ in range(3):
        a @ b
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < budget:
        a @ b
        n += 1
    return (time.perf_counter() - started) / n


def main() -> None:
    torch.set_num_threads(1)
    native = [flag for flag in BF16_CPU_FLAGS if flag in cpu_flags()]
    print(f"native bf16 flags: {native or 'none'}; tonetune's default: {best_precision('cpu')}")
    for m in (16, 64, 600):
        a, b = torch.randn(m, 576), torch.randn(576, 1536)
        full = seconds_per_matmul(a, b)
        half = seconds_per_matmul(a.bfloat16(), b.bfloat16())
        times = f"fp32 {full * 1e3:.3f} ms, bf16 {half * 1e3:.3f} ms"
        print(f"M={m:4d}: {times}, bf16 speed {full / half:.2f}x fp32")


if __name__ == "__main__":
    main()
