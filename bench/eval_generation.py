"""Evaluation generation: batched answers (left padding, KV cache) against one question at a time.

Run as (from the repository root):
    python -m bench.eval_generation [--questions 32] [--batch-size 16] [--max-new-tokens 64]

The embedded SmolLM2-135M answers the shared test questions both ways, greedy; the answers must
be the same and the batched run faster.
"""

from __future__ import annotations

import argparse
import time

from bench.common import shared_rows
from tonetune.config import compose, typed
from tonetune.generation.engine import Engine
from tonetune.generation.sampling import Sampling
from tonetune.models.base_models import load_causal_lm, load_tokenizer
from tonetune.schemas import BaseModelConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    spec = typed(BaseModelConfig, compose("train", ["paths.output_dir=/tmp/unused"]).base_model)
    engine = Engine(load_causal_lm(spec), load_tokenizer(spec))
    chats = [[{"role": "user", "content": r["question"]}] for r in shared_rows("test")[: args.questions]]
    sampling = Sampling(max_new_tokens=args.max_new_tokens)
    timings, answers = {}, {}
    for name, batch_size in (("one at a time", 1), (f"batches of {args.batch_size}", args.batch_size)):
        started = time.perf_counter()
        answers[name] = engine.chat(chats, sampling, batch_size=batch_size, progress=False)
        timings[name] = time.perf_counter() - started
        tokens = sum(a.completion_tokens for a in answers[name])
        print(f"{name:>16}: {timings[name]:.1f}s, {tokens / timings[name]:.1f} tokens/s")
    one, batched = timings.values()
    same = sum(a.text == b.text for a, b in zip(*answers.values(), strict=True))
    print(f"speed-up: {one / batched:.1f}x (goal >= 4x); identical answers: {same}/{len(chats)}")


if __name__ == "__main__":
    main()
