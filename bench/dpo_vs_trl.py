"""DPO throughput and peak memory: tonetune's objective=dpo against TRL's DPOTrainer, LoRA.

Run as (from the repository root, after building the pairs once):
    tonetune-synthesize seed_data=../shared/data/elon_musk_gpt4.jsonl data_dir=data/elon_musk_gpt4_pairs
    python -m bench.dpo_vs_trl [--epochs 1] [--data data/elon_musk_gpt4_pairs] [--limit N]

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

from bench.common import measure_in_subprocess, peak_rss_mb
from bench.train_vs_trl import SHARED

DPO = {"beta": 0.1, "nll_weight": 0.2, "gradient_checkpointing": False}
PAIRS_FOLDER = Path("data/elon_musk_gpt4_pairs")


def write_pairs(folder: Path, source: Path, limit: int | None) -> Path:
    """The first ``limit`` train pairs, plus one validation pair so tonetune trains on exactly those."""
    train_file = source / "preferences_train.jsonl"
    if not train_file.is_file():
        raise SystemExit(f"{train_file} is missing: build it with the tonetune-synthesize line above")
    rows = [json.loads(line) for line in train_file.read_text().splitlines() if line.strip()][:limit]
    rows = [{**r, "split": "train"} for r in rows] + [{**rows[0], "split": "validation"}]
    path = folder / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def run_tonetune(data: Path, epochs: int) -> dict:
    from tonetune.config import compose
    from tonetune.training.train import train

    baseline = peak_rss_mb()
    cfg = compose(
        "train",
        [
            "base_model=smollm2_135m",
            "adapter=lora",
            "objective=dpo",
            f"objective.beta={DPO['beta']}",
            f"objective.nll_weight={DPO['nll_weight']}",
            "objective.loss_type=sigmoid",
            f"adapter.r={SHARED['r']}",
            f"adapter.alpha={SHARED['alpha']}",
            f"adapter.dropout={SHARED['dropout']}",
            f"adapter.target_modules=[{','.join(SHARED['targets'])}]",
            f"adapter.gradient_checkpointing={DPO['gradient_checkpointing']}",
            "data=example",
            f"data.source={data}",
            f"data.batch_size={SHARED['batch']}",
            f"data.eval_batch_size={SHARED['batch']}",
            f"data.max_length={SHARED['max_length']}",
            f"optimizer.lr={SHARED['lr']}",
            f"optimizer.weight_decay={SHARED['weight_decay']}",
            "scheduler=cosine",
            f"module.warmup_ratio={SHARED['warmup_ratio']}",
            f"trainer.gradient_clip_val={SHARED['max_grad_norm']}",
            "logger=none",
            "callbacks=none",
            "trainer.enable_checkpointing=false",
            "trainer.limit_val_batches=0",
            "validate_before_training=false",
            f"trainer.max_epochs={epochs}",
            "trainer.enable_progress_bar=false",
            f"paths.output_dir={tempfile.mkdtemp()}",
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
    from peft import LoraConfig
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
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=SHARED["batch"],
        precompute_ref_log_probs=True,
        gradient_checkpointing=DPO["gradient_checkpointing"],
        precompute_ref_batch_size=SHARED["batch"],
        num_train_epochs=epochs,
        learning_rate=SHARED["lr"],
        max_length=SHARED["max_length"],
        beta=DPO["beta"],
        loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, DPO["nll_weight"]],
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        logging_steps=1000,
        dataloader_num_workers=0,
        bf16=False,
        fp16=False,
        lr_scheduler_type="cosine",
        warmup_steps=SHARED["warmup_ratio"],  # a float: a share of the steps
        weight_decay=SHARED["weight_decay"],
        max_grad_norm=SHARED["max_grad_norm"],
    )
    peft_config = LoraConfig(
        r=SHARED["r"],
        lora_alpha=SHARED["alpha"],
        lora_dropout=SHARED["dropout"],
        target_modules=SHARED["targets"],
        task_type="CAUSAL_LM",
    )
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
    args = parser.parse_args()
    if args.worker:
        result = (run_tonetune if args.worker == "tonetune" else run_trl)(args.data, args.epochs)
        print("RESULT " + json.dumps(result), flush=True)
        return

    data = write_pairs(Path(tempfile.mkdtemp()), args.data, args.limit)
    results = {}
    for framework in ("tonetune", "trl"):
        r = measure_in_subprocess("bench.dpo_vs_trl", framework, "lora", args.epochs, data)
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        results[framework] = r
        print(
            f"{framework:8s} dpo lora: {r['tokens']} tokens in {r['seconds']:.1f}s (reference included) = "
            f"{r['tokens_per_s']:.1f} tokens/s; peak RSS {r['peak_mb']:.0f} MB",
            flush=True,
        )
    ours, theirs = results["tonetune"], results["trl"]
    print(
        f"dpo: tokens/s tonetune/TRL = {ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}x (goal >= 1.5x); "
        f"wall time TRL/tonetune = {theirs['seconds'] / ours['seconds']:.2f}x; "
        f"peak memory tonetune/TRL = {ours['peak_mb'] / theirs['peak_mb']:.2f}x (goal <= 1)"
    )


if __name__ == "__main__":
    main()
