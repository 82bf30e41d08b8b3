"""Where a training step's time goes: torch profiler on one LoRA or QLoRA forward + backward.

Run as (from the repository root):
    python -m bench.qlora_profile lora
    python -m bench.qlora_profile qlora
    python -m bench.qlora_profile qlora adapter.gradient_checkpointing=false
    python -m bench.qlora_profile lora --bf16      # under bf16 autocast, as trainer.precision=bf16-mixed
    python -m bench.qlora_profile lora --rows 16 --tokens 200 --labelled 150   # a DPO batch's shape

The embedded SmolLM2-135M with the named adapter, a batch of 8 x 75 tokens (the last 30 labelled,
like an answer; ``--rows/--tokens/--labelled`` change it: 8 chosen + 8 rejected answers of a
preference batch are 16 mostly labelled rows), two warm-up steps, then two profiled steps; prints
the seconds per step and the operators by their own CPU time (matmuls, 4-bit dequantisation,
attention).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from tonetune.config import compose, typed
from tonetune.models.adapters import build_trainable_model
from tonetune.models.loss import IGNORE_INDEX, masked_lm_loss
from tonetune.schemas import AdapterConfig, BaseModelConfig


def profile_steps(
    adapter: str,
    overrides: list[str],
    bf16: bool = False,
    shape: tuple[int, int, int] = (8, 75, 30),
    steps: int = 2,
) -> None:
    cfg = compose("train", ["base_model=smollm2_135m", f"adapter={adapter}", "adapter.dropout=0", *overrides])
    model = build_trainable_model(typed(BaseModelConfig, cfg.base_model), typed(AdapterConfig, cfg.adapter))
    model.train()
    rows, tokens, labelled = shape
    ids = torch.randint(0, 49_000, (rows, tokens), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, : tokens - labelled] = IGNORE_INDEX
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = masked_lm_loss(model, batch)
        loss.backward()
        model.zero_grad()

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = (time.perf_counter() - started) / steps
    precision = "bf16 autocast" if bf16 else "fp32"
    print(
        f"== {adapter} {' '.join(overrides)} ({precision}, {rows} x {tokens} tokens, {labelled} labelled): "
        f"{seconds:.2f} s per step (forward + backward)"
    )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=40))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapter", choices=["lora", "qlora", "dora"])
    parser.add_argument("overrides", nargs="*", help="more config overrides")
    parser.add_argument("--bf16", action="store_true", help="the step under bf16 autocast")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=75)
    parser.add_argument("--labelled", type=int, default=30, help="the last tokens of each row with a loss")
    args = parser.parse_args()
    profile_steps(args.adapter, args.overrides, args.bf16, (args.rows, args.tokens, args.labelled))


if __name__ == "__main__":
    main()
