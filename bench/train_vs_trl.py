"""Training throughput and peak memory: tonetune against TRL's SFTTrainer, LoRA and QLoRA.

Run as (from the repository root):
    python -m bench.train_vs_trl [--epochs 1] [--adapters lora qlora] [--runs 3] [--defaults]

Every setting both sides share is read from one definition (``SHARED``, ``ADAPTERS``), so the
ratio measures tonetune alone: the embedded SmolLM2-135M, the 152 train pairs of ../shared, LoRA
r/alpha/dropout and targets, batch size, length, learning rate and schedule, gradient clipping,
length-grouped dynamic padding, assistant-only loss, fp32 on CPU (``BENCH_BF16=1``: bf16 mixed
precision on both). Each trainer runs in its own process so peak memory is its own. Also measures
this machine's fp32 matmul speed, the ceiling a LoRA step (about 4 x parameters FLOPs per token)
can reach. ``--runs N`` alternates the sides N times and reports the median ratio with its range.

``--defaults`` (LoRA) instead gives each side only the data and one epoch, as a user starts it:
``tonetune-train`` with its own defaults (no logger, checkpoints or validation), and TRL's
``SFTTrainer(model=<path>, peft_config=LoraConfig(task_type="CAUSAL_LM"))`` with ``SFTConfig``'s
defaults (no reports or saves; ``bf16=False``, as its bf16 default stops on a machine without a GPU).
Each side prints the precision it chose.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import (
    alternating,
    matmul_gflops,
    measure_in_subprocess,
    paired_ratio,
    peak_rss_mb,
    shared_rows,
)

SHARED = {
    "r": 16,
    "alpha": 32,
    "dropout": 0.0,
    "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "batch": 8,
    "max_length": 256,
    "lr": 5e-4,
    "warmup_ratio": 0.05,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    # mixed precision, on both sides (tonetune's default picks bf16 on native-bf16 CPUs): BENCH_BF16=1
    "bf16": os.environ.get("BENCH_BF16") == "1",
}
# What differs between the adapter kinds, the same on both sides.
ADAPTERS = {
    "lora": {"quantization": None, "gradient_checkpointing": False},
    "qlora": {"quantization": "nf4", "gradient_checkpointing": True},
}


def tonetune_overrides(data: Path, epochs: int, gradient_checkpointing: bool) -> list[str]:
    """The tonetune-train overrides for ``SHARED`` (both benchmarks' tonetune side)."""
    return [
        "base_model=smollm2_135m",
        "adapter=lora",
        f"adapter.r={SHARED['r']}",
        f"adapter.alpha={SHARED['alpha']}",
        f"adapter.dropout={SHARED['dropout']}",
        f"adapter.target_modules=[{','.join(SHARED['targets'])}]",
        f"adapter.gradient_checkpointing={gradient_checkpointing}",
        "data=example",
        f"data.source={data}",
        f"data.batch_size={SHARED['batch']}",
        f"data.max_length={SHARED['max_length']}",
        f"optimizer.lr={SHARED['lr']}",
        f"optimizer.weight_decay={SHARED['weight_decay']}",
        "scheduler=cosine",
        f"module.warmup_ratio={SHARED['warmup_ratio']}",
        f"trainer.gradient_clip_val={SHARED['max_grad_norm']}",
        f"trainer.precision={'bf16-mixed' if SHARED['bf16'] else '32-true'}",
        "logger=none",
        "callbacks=none",
        "trainer.enable_checkpointing=false",
        "trainer.limit_val_batches=0",
        "validate_before_training=false",
        f"trainer.max_epochs={epochs}",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={tempfile.mkdtemp()}",
    ]


def trl_arguments(epochs: int, gradient_checkpointing: bool) -> dict:
    """TRL trainer arguments for ``SHARED`` (SFTConfig and DPOConfig take them alike)."""
    return {
        "output_dir": tempfile.mkdtemp(),
        "per_device_train_batch_size": SHARED["batch"],
        "num_train_epochs": epochs,
        "learning_rate": SHARED["lr"],
        "max_length": SHARED["max_length"],
        "gradient_checkpointing": gradient_checkpointing,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "logging_steps": 1000,
        "dataloader_num_workers": 0,
        "bf16": SHARED["bf16"],
        "fp16": False,
        "lr_scheduler_type": "cosine",
        "warmup_steps": SHARED["warmup_ratio"],  # a float: a share of the steps
        "weight_decay": SHARED["weight_decay"],
        "max_grad_norm": SHARED["max_grad_norm"],
    }


def trl_lora_config():
    """PEFT's LoraConfig for ``SHARED``, as TRL's trainers take it."""
    from peft import LoraConfig

    return LoraConfig(
        r=SHARED["r"],
        lora_alpha=SHARED["alpha"],
        lora_dropout=SHARED["dropout"],
        target_modules=SHARED["targets"],
        task_type="CAUSAL_LM",
    )


def write_data(folder: Path) -> Path:
    """The train split, plus one validation row so that tonetune trains on exactly the same 152."""
    rows = shared_rows("train")
    path = folder / "train.jsonl"
    extra = {**shared_rows("test")[0], "split": "validation"}
    path.write_text("\n".join(json.dumps(r) for r in [*rows, extra]) + "\n")
    return path


def tonetune_default_overrides(data: Path, epochs: int) -> list[str]:
    """``tonetune-train`` on this data for ``epochs``, every training setting its own default."""
    return [
        "data=example",
        f"data.source={data}",
        f"trainer.max_epochs={epochs}",
        "logger=none",
        "callbacks=none",
        "trainer.enable_checkpointing=false",
        "trainer.limit_val_batches=0",
        "validate_before_training=false",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={tempfile.mkdtemp()}",
    ]


def run_tonetune(data: Path, adapter: str, epochs: int, defaults: bool) -> dict:
    from tonetune.config import compose
    from tonetune.training.train import train

    baseline = peak_rss_mb()
    if defaults:
        cfg = compose("train", tonetune_default_overrides(data, epochs))
    else:
        kind = ADAPTERS[adapter]
        overrides = tonetune_overrides(data, epochs, kind["gradient_checkpointing"])
        cfg = compose("train", [*overrides, f"adapter.quantization={kind['quantization'] or 'null'}"])
    metrics, objects = train(cfg)
    return {
        "tokens": metrics["train/tokens"],
        "seconds": metrics["train/seconds"],
        "peak_mb": peak_rss_mb(),
        "baseline_mb": baseline,
        "weights_mb": objects["module"].model.get_base_model().get_memory_footprint() / 2**20,
        "precision": str(cfg.trainer.precision),
    }


def trl_dataset(data: Path):
    """The train rows as TRL's prompt-completion conversations (the loss on the completion)."""
    from datasets import Dataset

    rows = [
        json.loads(line) for line in data.read_text().splitlines() if json.loads(line)["split"] == "train"
    ]
    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["question"]}],
                "completion": [{"role": "assistant", "content": r["answer"]}],
            }
            for r in rows
        ]
    )


def timed_trl(trainer, epochs: int, baseline: float) -> dict:
    """Train, and what the tonetune side reports too."""
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) * epochs
    started = time.perf_counter()
    trainer.train()
    return {
        "tokens": tokens,
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_rss_mb(),
        "baseline_mb": baseline,
        "weights_mb": trainer.model.get_base_model().get_memory_footprint() / 2**20,
        "precision": f"bf16={trainer.args.bf16}, weights {trainer.model.get_base_model().dtype}",
    }


def run_trl_defaults(data: Path, epochs: int) -> dict:
    """TRL as its quickstart starts it: a model path, PEFT's LoraConfig, ``SFTConfig``'s defaults."""
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from tonetune.models.embedded import embedded_model_dir

    baseline = peak_rss_mb()
    # SFTConfig's bf16=True stops on a machine without a GPU ("Your setup doesn't support bf16/gpu"):
    # the first thing a CPU user changes, so TRL's default here is fp32, every other default kept
    args = SFTConfig(
        output_dir=tempfile.mkdtemp(), num_train_epochs=epochs, save_strategy="no", report_to=[], bf16=False
    )
    trainer = SFTTrainer(
        model=str(embedded_model_dir()),
        args=args,
        train_dataset=trl_dataset(data),
        peft_config=LoraConfig(task_type="CAUSAL_LM"),
    )
    return timed_trl(trainer, epochs, baseline)


def run_trl(data: Path, adapter: str, epochs: int, defaults: bool) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    from tonetune.models.embedded import embedded_model_dir

    if defaults:
        return run_trl_defaults(data, epochs)
    baseline = peak_rss_mb()
    path = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    kind = ADAPTERS[adapter]
    quant = None
    if kind["quantization"]:
        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=kind["quantization"],
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32,
        )
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, quantization_config=quant, **({"device_map": {"": "cpu"}} if quant else {})
    )
    dataset = trl_dataset(data)
    args = SFTConfig(
        **trl_arguments(epochs, kind["gradient_checkpointing"]), train_sampling_strategy="group_by_length"
    )
    peft_config = trl_lora_config()
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    return timed_trl(trainer, epochs, baseline)


def worker(framework: str, adapter: str, epochs: int, data: Path, defaults: bool) -> None:
    result = (run_tonetune if framework == "tonetune" else run_trl)(data, adapter, epochs, defaults)
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--worker", choices=["tonetune", "trl"])
    parser.add_argument("--adapter", default="lora")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--adapters", nargs="+", default=list(ADAPTERS), choices=list(ADAPTERS))
    parser.add_argument("--runs", type=int, default=1, help="alternating runs of each side")
    parser.add_argument("--defaults", action="store_true", help="each side's own defaults (LoRA)")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.adapter, args.epochs, args.data, args.defaults)
        return

    data = write_data(Path(tempfile.mkdtemp()))
    gflops = matmul_gflops()
    params = 134_515_008  # SmolLM2-135M
    ceiling = gflops * 1e9 / (4 * params)
    print(
        f"fp32 matmul on the model's projection shapes: {gflops:.1f} GFLOP/s -> LoRA ceiling about "
        f"{ceiling:.0f} tokens/s (4 x params FLOPs/token)"
    )
    adapters = ["lora"] if args.defaults else args.adapters
    extra = ["--defaults"] if args.defaults else []
    results = {adapter: measure_sides(adapter, args, data, extra) for adapter in adapters}
    for adapter in adapters:
        ours, theirs = results[adapter]["tonetune"], results[adapter]["trl"]
        speed = paired_ratio([r["tokens_per_s"] for r in ours], [r["tokens_per_s"] for r in theirs])
        memory = paired_ratio([r["peak_mb"] for r in ours], [r["peak_mb"] for r in theirs])
        typical = statistics.median(r["tokens_per_s"] for r in ours)
        print(
            f"{adapter}{' (each side its defaults)' if args.defaults else ''}: tokens/s tonetune/TRL = "
            f"{speed} (goal >= {3 if args.defaults else 1.5}x); peak memory tonetune/TRL = {memory} "
            f"(goal <= 1); tonetune vs the fp32 ceiling = {typical / ceiling:.2f}"
        )
    if len(adapters) < 2:
        return
    lora, qlora = results["lora"]["tonetune"][0], results["qlora"]["tonetune"][0]
    print(
        f"QLoRA/LoRA memory (tonetune): peak RSS {qlora['peak_mb'] / lora['peak_mb']:.2f}x, "
        f"{qlora['above_baseline_mb'] / lora['above_baseline_mb']:.2f}x above the imports, "
        f"model weights {qlora['weights_mb'] / lora['weights_mb']:.2f}x (goal <= 0.5)"
    )


def measure_sides(
    adapter: str, args: argparse.Namespace, data: Path, extra: list[str]
) -> dict[str, list[dict]]:
    """Each side's runs for one adapter kind, alternating, each in its own process, printed as they end."""
    count = iter(range(2 * args.runs))

    def measure(framework: str) -> dict:
        r = measure_in_subprocess("bench.train_vs_trl", framework, adapter, args.epochs, data, *extra)
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        r["above_baseline_mb"] = r["peak_mb"] - r["baseline_mb"]
        print(
            f"[{next(count) // 2 + 1}/{args.runs}] {framework:8s} {adapter:5s}: {r['tokens']} tokens in "
            f"{r['seconds']:.1f}s = {r['tokens_per_s']:.1f} tokens/s; peak RSS {r['peak_mb']:.0f} MB "
            f"({r['above_baseline_mb']:.0f} MB above the process after imports); "
            f"model weights {r['weights_mb']:.0f} MB; {r['precision']}",
            flush=True,
        )
        return r

    return alternating(args.runs, ("tonetune", "trl"), measure)


if __name__ == "__main__":
    main()
