"""Evaluation generation: tonetune's decode path against its fp32 reference and transformers' generate.

Run as (from the repository root):
    python -m bench.eval_generation [--questions 48] [--max-new-tokens 96]

The evaluation's workload on the embedded SmolLM2-135M: each shared test question asked twice
(without and with the persona's prompt, as the base and base_prompted contestants are), greedy with
the default repetition penalty. Three ways, each on the same prompts and settings:

- reference: the engine in fp32 at the previous default batch (32),
- default:   the engine as the evaluation now runs it (``evaluation.dtype``, ``evaluation.batch_size``),
- transformers: ``model.generate`` at the default's batch and dtype, left-padded, on transformers' own
  ``sdpa`` attention.

Each way answers the whole workload once untimed (the first pass of a process pays for its first
large buffers), then again timed, as an evaluation's later batches run. Prints tokens/s of each,
the default's speed as a ratio of the others, and how many greedy answers are word for word the
same. ``--only reference`` measures the first alone, e.g. with an older
checkout's engine: ``cd <old worktree> && python <this checkout>/bench/eval_generation.py --only reference``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from bench.common import shared_rows
from tonetune.config import compose, typed
from tonetune.generation.engine import Engine
from tonetune.generation.sampling import Sampling
from tonetune.models.base_models import load_causal_lm, load_tokenizer
from tonetune.schemas import BaseModelConfig, DType

PROMPT = "You are Elon Musk answering on Twitter: witty, terse, emojis, hashtags."


def timed(answer: Callable[[], list[tuple[str, int]]]) -> tuple[list[str], float, float]:
    """(texts, seconds, completion tokens/s) of one way of answering."""
    started = time.perf_counter()
    answers = answer()
    seconds = time.perf_counter() - started
    return [text for text, _ in answers], seconds, sum(n for _, n in answers) / seconds


def engine_answers(engine: Engine, chats: list, sampling: Sampling, batch_size: int) -> list[tuple[str, int]]:
    """The engine's answers (text, completion tokens)."""
    done = engine.chat(chats, sampling, batch_size=batch_size, progress=False)
    return [(a.text, a.completion_tokens) for a in done]


def transformers_answers(
    engine: Engine, chats: list, sampling: Sampling, batch_size: int
) -> list[tuple[str, int]]:
    """``model.generate`` on the same prompts (sorted by length, left-padded), the same settings."""
    tokenizer, model = engine.tokenizer, engine.model
    model.config._attn_implementation = "sdpa"  # transformers' own attention, not the engine's grouped one
    prompts = [engine.encode(c) for c in chats]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: dict[int, tuple[str, int]] = {}
    stops = sorted(engine.stops)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in batch)
        pads = [width - len(prompts[i]) for i in batch]
        ids = torch.tensor(
            [[tokenizer.pad_token_id] * n + list(prompts[i]) for n, i in zip(pads, batch, strict=True)]
        )
        mask = torch.tensor([[0] * n + [1] * (width - n) for n in pads])
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=sampling.max_new_tokens,
                do_sample=False,
                repetition_penalty=sampling.repetition_penalty,
                eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id,
            )[:, width:]
        for i, row in zip(batch, out.tolist(), strict=True):
            ended = next((k + 1 for k, token in enumerate(row) if token in stops), len(row))
            answers[i] = (tokenizer.decode(row[:ended], skip_special_tokens=True).strip(), ended)
    return [answers[i] for i in range(len(prompts))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--reference-batch-size", type=int, default=32)
    parser.add_argument("--only", choices=["reference"], default=None)
    args = parser.parse_args()

    cfg = compose("evaluate", ["run_dir=/tmp/unused", "paths.output_dir=/tmp/unused"])
    spec = typed(BaseModelConfig, compose("train", ["paths.output_dir=/tmp/unused"]).base_model)
    tokenizer = load_tokenizer(spec)
    questions = [r["question"] for r in shared_rows("test")[: args.questions]]
    chats = [[{"role": "user", "content": q}] for q in questions]
    chats += [[{"role": "system", "content": PROMPT}, {"role": "user", "content": q}] for q in questions]
    sampling = Sampling(max_new_tokens=args.max_new_tokens)
    threads = torch.get_num_threads()
    print(f"{len(chats)} prompts, greedy, {args.max_new_tokens} new tokens, threads={threads}")

    def measure(name: str, dtype: str, batch: int, way: Callable = engine_answers) -> tuple[list[str], float]:
        cast = {"dtype": DType(dtype)} if dtype != "float32" else {}  # (an older engine: fp32 only)
        engine = Engine(load_causal_lm(spec), tokenizer, **cast)
        way(engine, chats, sampling, batch)  # warm-up: the process's first big buffers cost page faults
        texts, seconds, rate = timed(lambda: way(engine, chats, sampling, batch))
        print(f"{name:<12} {dtype:>8}, batch {batch:>3}: {seconds:6.1f}s, {rate:6.1f} tokens/s")
        return texts, rate

    reference, reference_rate = measure("reference", "float32", args.reference_batch_size)
    if args.only:
        return
    dtype, batch = DType(cfg.evaluation.dtype).value, int(cfg.evaluation.batch_size)
    default, rate = measure("default", dtype, batch)
    generated, generate_rate = measure("transformers", dtype, batch, transformers_answers)

    def same(texts: list[str]) -> str:
        matching = sum(a == b for a, b in zip(default, texts, strict=True))
        return f"identical greedy answers {matching}/{len(chats)}"

    print(f"default / reference: {rate / reference_rate:.2f}x tokens/s; {same(reference)}")
    print(f"default / transformers generate: {rate / generate_rate:.2f}x tokens/s; {same(generated)}")


if __name__ == "__main__":
    main()
