"""A preference batch scored with each pair's prompt run once, against its stacked rows.

Run as (from the repository root, after building the pairs once, as for bench.dpo_vs_trl):
    python -m bench.shared_prompt [--data data/elon_musk_gpt4_pairs] [--pairs 8] [--rounds 3]

The first ``--pairs`` train pairs, batched by tonetune's preference collate, scored by the embedded
SmolLM2-135M with a fresh LoRA (r=16 on the seven projections, fp32), two ways in one process:
``sequence_logprobs`` on the stacked rows and ``pair_logprobs`` on one row per pair. Prints how
far apart the summed log-probabilities are, the positions each layout runs, and the seconds of a
forward and backward pass of each, alternating, with the median ratio and its range.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.common import paired_ratio
from bench.dpo_vs_trl import PAIRS_FOLDER
from bench.train_vs_trl import SHARED, trl_lora_config


def scored_batch(data: Path, pairs: int) -> dict[str, torch.Tensor]:
    """The first ``pairs`` train pairs as one collated batch (chosen rows, then rejected)."""
    from transformers import AutoTokenizer

    from tonetune.data.preference import PreferenceDataModule
    from tonetune.models.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    module = PreferenceDataModule(str(data), tokenizer=tokenizer, max_length=SHARED["max_length"])
    module.setup()
    train = module.split("train")
    return module.collate([train[i] for i in range(pairs)])


def lora_model() -> torch.nn.Module:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from tonetune.models.embedded import embedded_model_dir

    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
    return get_peft_model(model, trl_lora_config())


def step_seconds(score, model: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int = 2) -> float:
    """Seconds per forward and backward of ``score``'s summed log-probabilities."""
    started = time.perf_counter()
    for _ in range(steps):
        logps, _ = score(model, batch)
        logps.sum().backward()
        model.zero_grad()
    return (time.perf_counter() - started) / steps


def main() -> None:
    from tonetune.models.loss import sequence_logprobs
    from tonetune.models.shared_prompt import pair_logprobs, share_prompts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=PAIRS_FOLDER)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batch = scored_batch(args.data, args.pairs)
    model = lora_model()
    shared = share_prompts(batch)
    print(
        f"positions: stacked {tuple(batch['input_ids'].shape)} = {batch['input_ids'].numel()}, "
        f"one row per pair {tuple(shared['input_ids'].shape)} = {shared['input_ids'].numel()}"
    )
    with torch.no_grad():
        stacked, stacked_counts = sequence_logprobs(model, batch)
        paired, paired_counts = pair_logprobs(model, batch)
    print(
        f"summed log-probabilities: largest difference {(stacked - paired).abs().max():.2e} "
        f"(sums {stacked.min():.1f} to {stacked.max():.1f}); token counts equal: "
        f"{torch.equal(stacked_counts, paired_counts)}"
    )
    step_seconds(sequence_logprobs, model, batch, steps=1)  # warm-up
    times: dict[str, list[float]] = {"stacked": [], "shared": []}
    for _ in range(args.rounds):
        times["stacked"].append(step_seconds(sequence_logprobs, model, batch))
        times["shared"].append(step_seconds(pair_logprobs, model, batch))
    for name, values in times.items():
        print(f"{name:8s} forward + backward: " + ", ".join(f"{v:.2f}" for v in values) + " s")
    print(f"speed shared/stacked = {paired_ratio(times['stacked'], times['shared'])}")


if __name__ == "__main__":
    main()
