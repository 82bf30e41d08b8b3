"""A LoRA adapter folded into the packed weights against PEFT's own adapter path, decoding in bf16.

Run as (from the repository root):
    python -m bench.folded_lora [--run-dir RUN] [--questions 48] [--batch 8]

The fine-tuned model of RUN (default: a LoRA run trained here on data=example for one epoch)
answers the first questions of the Elon set greedily three ways, in one process: fp32 (the
reference path), bf16 with the adapter's products at every step (PEFT), and bf16 folded
(``tonetune.generation.folded_lora``). Prints the time of a small batch and of all the questions
on each bf16 path, the ratio, and how close each path's answers stay to fp32's (whole answers
identical; words in common before the first difference); beside them, the base's step with the
adapter off (what folding can reach) and the seconds a fold takes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import SHARED_DATA


def trained_run() -> Path:
    """A one-epoch LoRA run on the example data, in a temporary folder."""
    folder = Path(tempfile.mkdtemp()) / "run"
    command = [sys.executable, "-m", "tonetune.cli.train", "data=example", "trainer.max_epochs=1"]
    command += ["logger=none", "trainer.enable_progress_bar=false", f"hydra.run.dir={folder}"]
    subprocess.run(command, check=True, capture_output=True)
    return folder


def fold_seconds(model: object, adapter: str) -> tuple[float, float]:
    """Seconds to fold ``adapter`` from nothing, and to find an existing fold current."""
    import torch

    from tonetune.generation.folded_lora import folded_lora

    timings = []
    for _ in range(2):
        started = time.perf_counter()
        with torch.inference_mode(), folded_lora(model, adapter):
            timings.append(time.perf_counter() - started)
    return timings[0], timings[1]


def answers(
    run_dir: Path, dtype: str, fold: bool, questions: list[str], batch: int, base: bool = False
) -> dict:
    """Greedy answers to ``questions`` and the seconds they took (a first batch of ``batch`` alone).

    ``base``: the run's base (adapter off) instead of its fine-tuned model.
    """
    from tonetune.evaluation.lineup import load_models
    from tonetune.generation import engine as engine_module
    from tonetune.generation.folded_lora import folded_lora
    from tonetune.generation.sampling import Sampling
    from tonetune.models.runs import read_run
    from tonetune.schemas import DType

    engine_module.folded_lora = folded_lora if fold else (lambda *_: contextlib.nullcontext(False))
    models = load_models(read_run(run_dir), DType(dtype))
    engine, adapter = models.finetuned, models.base_adapter if base else models.finetuned_adapter
    folding = fold_seconds(engine.model, adapter) if fold else None
    conversations = [[{"role": "user", "content": q}] for q in questions]
    engine.chat(conversations[:2], Sampling(max_new_tokens=4), adapter=adapter, progress=False)  # warm-up
    started = time.perf_counter()
    small = engine.chat(conversations[:batch], Sampling(), adapter=adapter, batch_size=batch, progress=False)
    small_seconds = time.perf_counter() - started
    started = time.perf_counter()
    done = engine.chat(conversations, Sampling(), adapter=adapter, batch_size=len(questions), progress=False)
    return {
        "texts": [c.text for c in done],
        "step_ms": 1000 * small_seconds / max(c.completion_tokens for c in small),
        "seconds": time.perf_counter() - started,
        "tokens": sum(c.completion_tokens for c in done),
        "folding": folding,
    }


def common_words(a: str, b: str) -> int:
    """Words two answers share before their first difference."""
    words = 0
    for x, y in zip(a.split(), b.split(), strict=False):
        if x != y:
            break
        words += 1
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=None, help="a LoRA run (default: train one)")
    parser.add_argument("--questions", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8, help="the small batch timed per step")
    args = parser.parse_args()
    run_dir = args.run_dir or trained_run()
    rows = [json.loads(line) for line in SHARED_DATA.read_text().splitlines() if line.strip()]
    questions = [r["question"] for r in rows][: args.questions]
    reference = answers(run_dir, "float32", False, questions, args.batch)
    peft, folded = (answers(run_dir, "bfloat16", fold, questions, args.batch) for fold in (False, True))
    base = answers(run_dir, "bfloat16", False, questions, args.batch, base=True)
    print(f"bf16, the base alone (adapter off): {base['step_ms']:.1f} ms a step ({args.batch} rows)")
    print("folding from nothing {:.2f} s; finding the fold current {:.3f} s".format(*folded["folding"]))
    for name, side in (("bf16, PEFT's adapter path", peft), ("bf16, folded", folded)):
        same = sum(a == b for a, b in zip(side["texts"], reference["texts"], strict=True))
        shared = [common_words(a, b) for a, b in zip(side["texts"], reference["texts"], strict=True)]
        print(
            f"{name}: {side['step_ms']:.1f} ms a step ({args.batch} rows); {len(questions)} answers "
            f"{side['seconds']:.1f} s ({side['tokens'] / side['seconds']:.1f} tokens/s); identical to fp32 "
            f"{same}/{len(questions)}, words before the first difference median {statistics.median(shared)}"
            f" (mean {statistics.mean(shared):.1f})"
        )
    print(
        f"folded / PEFT: {peft['step_ms'] / folded['step_ms']:.2f}x per step ({args.batch} rows), "
        f"{peft['seconds'] / folded['seconds']:.2f}x for all {len(questions)}; fp32 reference "
        f"{reference['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
