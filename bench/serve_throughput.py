"""Server throughput with 8 concurrent clients: request batching on against off, in one run.

Run as (from the repository root):
    python -m bench.serve_throughput [--clients 8] [--requests 3] [--max-tokens 64]

Starts tonetune-serve on the embedded SmolLM2-135M twice (max_batch_size=8, then 1); every
client sends its requests one after another; reports completion tokens per second.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import openai

from bench.common import free_port, shared_rows, wait_until_up


def start(max_batch_size: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            "tonetune-serve",
            f"port={port}",
            f"server.max_batch_size={max_batch_size}",
            "server.batch_timeout=0.05",
            f"hydra.run.dir={tempfile.mkdtemp()}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, process)
    return process, url


def load(url: str, clients: int, requests: int, max_tokens: int) -> tuple[int, float]:
    api = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
    questions = [r["question"] for r in shared_rows("test")]

    def client(index: int) -> int:
        tokens = 0
        for i in range(requests):
            q = questions[(index * requests + i) % len(questions)]
            r = api.chat.completions.create(
                model="smollm2-135m-instruct",
                messages=[{"role": "user", "content": q}],
                max_tokens=max_tokens,
                temperature=0,
            )
            tokens += r.usage.completion_tokens
        return tokens

    client(0)  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        tokens = sum(pool.map(client, range(clients)))
    return tokens, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    rates = {}
    for batch in (args.clients, 1):
        process, url = start(batch)
        try:
            tokens, seconds = load(url, args.clients, args.requests, args.max_tokens)
        finally:
            process.send_signal(signal.SIGTERM)  # one process: it stops within seconds
            process.wait()
        rates[batch] = tokens / seconds
        print(
            f"max_batch_size={batch}: {tokens} completion tokens in {seconds:.1f}s "
            f"= {rates[batch]:.1f} tokens/s"
        )
    print(f"batching on / off: {rates[args.clients] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
