"""Teacher throughput: 200 persona answers from a server with 0.5 s latency per request.

Run as (from the repository root):
    python -m bench.synthesis_throughput [--requests 200] [--latency 0.5] [--concurrency 16]

Prints wall time of concurrent requests against sequential ones (measured in the same run) and
against the ideal N x latency / concurrency.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from tonetune.config import compose, typed
from tonetune.llm.openai_api import OpenAIClient
from tonetune.schemas import PersonaConfig
from tonetune.synthesis.answers import answer_request
from tonetune.synthesis.settings import AnswerSettings


def timed_run(base_url: str, requests: list, concurrency: int) -> float:
    teacher = OpenAIClient(
        model="stub",
        base_url=base_url,
        api_key_required=False,
        concurrency=concurrency,
        requests_per_minute=100_000,
        tokens_per_minute=100_000_000,
        max_tokens_param="max_tokens",
    )
    started = time.perf_counter()
    results = teacher.complete(requests, desc=f"concurrency {concurrency}")
    elapsed = time.perf_counter() - started
    assert len(results) == len(requests) and all(r.text for r in results)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    persona = typed(PersonaConfig, compose("synthesize", ["paths.output_dir=/tmp/unused"]).persona)
    settings = AnswerSettings(temperature=0.8, max_tokens=64)
    requests = [
        answer_request(
            persona, [{"role": "user", "content": f"Question number {i}: what about Mars?"}], 0, 0, settings
        )
        for i in range(args.requests)
    ]
    # The server runs in its own process, as a real one would: it must not share our interpreter.
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.openai_stub", "--latency", str(args.latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = server.stdout.readline().strip()
        concurrent = timed_run(base_url, requests, args.concurrency)
        sequential = timed_run(base_url, requests, 1)
    finally:
        server.terminate()
    limit = args.requests * args.latency / args.concurrency
    print(f"requests={args.requests} latency={args.latency}s concurrency={args.concurrency}")
    print(f"sequential: {sequential:.2f}s  concurrent: {concurrent:.2f}s  ideal limit: {limit:.2f}s")
    print(f"speed-up vs sequential: {sequential / concurrent:.1f}x (goal >= 10x)")
    print(f"wall time / ideal limit: {concurrent / limit:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    main()
