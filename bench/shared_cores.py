"""A server and a synthesis on one machine: each alone, then both at once, cores shared or not.

Run as (from the repository root):
    python -m bench.shared_cores [--prompts 16] [--max-tokens 48]

Two torch processes on the embedded SmolLM2-135M: ``tonetune-serve`` answering clients (4 at a
time), and a local-teacher synthesis' decoding (the engine answering bank questions in batches, as
``teacher=local`` does). Each runs alone first, then both together twice: with tonetune's thread
sharing (every process takes its share of the cores, tonetune.hardware) and with each process
taking every core (``TONETUNE_THREADS=<cores>``, what happened before). Prints each phase's time
and the ratio of together-time to the sum of the alone-times (1.0: no loss from sharing).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai

from bench.common import free_port, shared_rows, wait_until_up
from tonetune.hardware import REGISTRY_ENV, THREADS_ENV, usable_cores


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """tonetune-serve on the embedded base model, on a free port; waits until it answers."""
    port = free_port()
    process = subprocess.Popen(
        ["tonetune-serve", f"port={port}", "server.max_batch_size=4", f"hydra.run.dir={tempfile.mkdtemp()}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, process)
    return process, url


def clients(url: str, prompts: int, max_tokens: int) -> float:
    """Seconds for 4 concurrent clients to get ``prompts`` answers in all."""
    api = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=1800)
    questions = [r["question"] for r in shared_rows("test")][:prompts]

    def ask(question: str) -> None:
        api.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": question}],
            max_tokens=max_tokens,
            temperature=0,
        )

    ask(questions[0])  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(ask, questions))
    return time.perf_counter() - started


def worker(prompts: int, max_tokens: int) -> None:
    """The local teacher's decoding: bank questions answered in batches of 16 (prints its seconds)."""
    from tonetune.config import compose, typed
    from tonetune.generation.engine import Engine
    from tonetune.generation.sampling import Sampling
    from tonetune.hardware import best_decode_dtype
    from tonetune.models.base_models import load_causal_lm, load_tokenizer
    from tonetune.schemas import BaseModelConfig, DType

    spec = typed(BaseModelConfig, compose("train", ["paths.output_dir=/tmp/unused"]).base_model)
    engine = Engine(load_causal_lm(spec), load_tokenizer(spec), dtype=DType(best_decode_dtype()))
    chats = [[{"role": "user", "content": r["question"]}] for r in shared_rows("train")[:prompts]]
    sampling = Sampling(max_new_tokens=max_tokens, temperature=0.8, seed=1)
    engine.chat(chats[:2], sampling, progress=False)  # warm-up
    print("READY", flush=True)
    sys.stdin.readline()  # go
    started = time.perf_counter()
    engine.chat(chats, sampling, batch_size=16, progress=False)
    print(f"SECONDS {time.perf_counter() - started}", flush=True)


def start_worker(env: dict[str, str], prompts: int, max_tokens: int) -> subprocess.Popen:
    args = [sys.executable, "-m", "bench.shared_cores", "--worker", "--prompts", str(prompts)]
    process = subprocess.Popen(
        [*args, "--max-tokens", str(max_tokens)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    for line in process.stdout:
        if line.strip() == "READY":
            return process
    raise RuntimeError(f"the synthesis worker exited with {process.wait()} before it was ready")


def synthesis_seconds(process: subprocess.Popen) -> float:
    process.stdin.write("go\n")
    process.stdin.flush()
    line = next(line for line in process.stdout if line.startswith("SECONDS "))
    process.wait()
    return float(line.split()[1])


def phase(
    env: dict[str, str], prompts: int, max_tokens: int, serve: bool, synthesize: bool
) -> dict[str, float]:
    """Seconds of what runs in this phase (both start together once both are loaded)."""
    server = start_server(env) if serve else None
    synth = start_worker(env, prompts, max_tokens) if synthesize else None
    seconds: dict[str, float] = {}
    try:
        started = time.perf_counter()
        thread = None
        if synth is not None:
            thread = threading.Thread(target=lambda: seconds.update(synthesize=synthesis_seconds(synth)))
            thread.start()
        if server is not None:
            seconds["serve"] = clients(server[1], prompts, max_tokens)
        if thread is not None:
            thread.join()
        seconds["wall"] = time.perf_counter() - started
    finally:
        if server is not None:
            os.killpg(server[0].pid, signal.SIGTERM)
            server[0].wait()
        if synth is not None:
            synth.kill()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(args.prompts, args.max_tokens)
        return
    cores = usable_cores()
    base = {
        k: v for k, v in os.environ.items() if k not in {THREADS_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS"}
    }
    base = {**base, "HF_HUB_OFFLINE": "1", REGISTRY_ENV: tempfile.mkdtemp()}
    print(f"{cores} cores; {args.prompts} answers of up to {args.max_tokens} tokens each side")
    serve_alone = phase(base, args.prompts, args.max_tokens, True, False)["serve"]
    synth_alone = phase(base, args.prompts, args.max_tokens, False, True)["synthesize"]
    total = serve_alone + synth_alone
    print(f"alone:        serve {serve_alone:6.1f}s, synthesize {synth_alone:6.1f}s, sum {total:.1f}s")
    for name, env in (
        ("shared", base),
        ("every core", {**base, THREADS_ENV: str(cores)}),
    ):
        both = phase(env, args.prompts, args.max_tokens, True, True)
        ratio = both["wall"] / total
        print(
            f"{name + ':':<13} serve {both['serve']:6.1f}s, synthesize {both['synthesize']:6.1f}s, "
            f"both done {both['wall']:.1f}s = {ratio:.2f}x the sum alone"
        )


if __name__ == "__main__":
    main()
