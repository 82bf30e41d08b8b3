"""DPO throughput and peak memory: tonetune's objective=dpo against TRL's DPOTrainer, LoRA.

Run as (from the repository root, after building the pairs once):
    tonetune-synthesize seed_data=../shared/data/elon_musk_gpt4.jsonl data_dir=data/elon_musk_gpt4_pairs
    python -m bench.dpo_vs_trl [--epochs 1] [--data data/elon_musk_gpt4_pairs] [--limit N] [--runs 3]

Both sides train on the same 152 pairs (chosen: GPT-4's answer; rejected: the base model's own),
with every shared setting read from one definition (``bench.train_vs_trl.SHARED`` plus ``DPO``):
the embedded SmolLM2-135M in fp32 on CPU, LoRA r/alpha/dropout and targets, batch size, length,
learning rate and schedule, gradient clipping, activation checkpointing (off on both: TRL turns it
on by default), beta, the sigmoid loss plus an NLL-on-chosen term.
Both compute the reference log-probabilities once before training (TRL:
``precompute_ref_log_probs=True``, its faster mode); the time compared is that pass plus training.
Each trainer runs in its own process so peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.common import alternating, measure_in_subprocess, paired_ratio, peak_rss_mb
from bench.train_vs_trl import SHARED, tonetune_overrides, trl_arguments, trl_lora_config

DPO = {"beta": 0.1, "nll_weight": 0.2, "gradient_checkpointing": False}
PAIRS_FOLDER = Path("data/elon_musk_gpt4_pairs")


def write_pairs(folder: Path, source: Path, limit: int | None) -> Path:
    """The first ``limit`` train pairs and one test pair as validation (tonetune trains on exactly those)."""
    train_file, test_file = source / "preferences_train.jsonl", source / "preferences_test.jsonl"
    for needed in (train_file, test_file):
        if not needed.is_file():
            raise SystemExit(f"{needed} is missing: build it with the tonetune-synthesize line above")
    rows = [json.loads(line) for line in train_file.read_text().splitlines() if line.strip()][:limit]
    held_out = json.loads(test_file.read_text().splitlines()[0])
    rows = [{**r, "split": "train"} for r in rows] + [{**held_out, "split": "validation"}]
    path = folder / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def run_tonetune(data: Path, epochs: int) -> dict:
    from tonetune.config import compose
    from tonetune.training.train import train

    baseline = peak_rss_mb()
    objective = [f"objective.beta={DPO['beta']}", f"objective.nll_weight={DPO['nll_weight']}"]
    cfg = compose(
        "train",
        [
            *tonetune_overrides(data, epochs, DPO["gradient_checkpointing"]),
            "objective=dpo",
            "objective.loss_type=sigmoid",
            *objective,
            f"data.eval_batch_size={SHARED['batch']}",
        ],
    )
    metrics, _ = train(cfg)
    return {
        "tokens": metrics["train/tokens"],
        "seconds": metrics["train/seconds"] + metrics["train/reference_seconds"],
        "reference_seconds": metrics["train/reference_seconds"],
        "peak_mb": peak_rss_mb(),
        "baseline_mb": baseline,
    }


def run_trl(data: Path, epochs: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from tonetune.models.embedded import embedded_model_dir

    baseline = peak_rss_mb()
    path = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    dataset = Dataset.from_list(
        [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows if r["split"] == "train"]
    )
    args = DPOConfig(
        **trl_arguments(epochs, DPO["gradient_checkpointing"]),
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=SHARED["batch"],
        beta=DPO["beta"],
        loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, DPO["nll_weight"]],
    )
    peft_config = trl_lora_config()
    trainer = DPOTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    tokenized = trainer.train_dataset
    columns = zip(tokenized["prompt_ids"], tokenized["chosen_ids"], tokenized["rejected_ids"], strict=True)
    per_epoch = sum(2 * len(p) + len(c) + len(r) for p, c, r in columns)
    started = time.perf_counter()
    trainer.train()
    return {
        "tokens": per_epoch * epochs,
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_rss_mb(),
        "baseline_mb": baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--worker", choices=["tonetune", "trl"])
    parser.add_argument("--adapter", default="lora")
    parser.add_argument("--data", type=Path, default=PAIRS_FOLDER)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N pairs only")
    parser.add_argument("--runs", type=int, default=1, help="alternating runs of each side")
    args = parser.parse_args()
    if args.worker:
        result = (run_tonetune if args.worker == "tonetune" else run_trl)(args.data, args.epochs)
        print("RESULT " + json.dumps(result), flush=True)
        return

    data = write_pairs(Path(tempfile.mkdtemp()), args.data, args.limit)
    count = iter(range(2 * args.runs))

    def measure(framework: str) -> dict:
        r = measure_in_subprocess("bench.dpo_vs_trl", framework, "lora", args.epochs, data)
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        print(
            f"[{next(count) // 2 + 1}/{args.runs}] {framework:8s} dpo lora: {r['tokens']} tokens in "
            f"{r['seconds']:.1f}s (reference included) = {r['tokens_per_s']:.1f} tokens/s; "
            f"peak RSS {r['peak_mb']:.0f} MB",
            flush=True,
        )
        return r

    results = alternating(args.runs, ("tonetune", "trl"), measure)
    ours, theirs = results["tonetune"], results["trl"]
    speed = paired_ratio([r["tokens_per_s"] for r in ours], [r["tokens_per_s"] for r in theirs])
    memory = paired_ratio([r["peak_mb"] for r in ours], [r["peak_mb"] for r in theirs])
    print(
        f"dpo: tokens/s tonetune/TRL = {speed} (goal >= 1.5x); "
        f"peak memory tonetune/TRL = {memory} (goal <= 1)"
    )


if __name__ == "__main__":
    main()
