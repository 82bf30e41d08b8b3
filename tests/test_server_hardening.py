"""tonetune-serve against what a careless or hostile client sends (issue 19, items 1, 2, 4, 5, 6).

One real server on 127.0.0.1 answers as the tiny base model (nothing to train), with an API key and
small body limits; every request below goes over HTTP as a client's would.
"""

from __future__ import annotations

import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
import torch

from tests.conftest import compose_config
from tests.test_serving import client, start_server, stop
from tonetune.config import typed
from tonetune.generation.engine import Engine, GenerationRequest
from tonetune.generation.sampling import Sampling
from tonetune.models.base_models import load_causal_lm, load_tokenizer
from tonetune.schemas import BaseModelConfig

KEY = "k3y-for-the-tests"
HEADERS = {"Authorization": f"Bearer {KEY}"}
MODEL = "tiny-llama"
MAX_BODY, MAX_MESSAGE = 3_000_000, 1_000_000
QUESTION = "Tell me about rockets."


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(url, pid)`` of a server of the tiny base model (``run_dir=[]``: no run, the base itself)."""
    process, url = start_server(
        [],
        tmp_path_factory.mktemp("hardening"),
        {"TONETUNE_SERVE_API_KEY": KEY, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        "base_model=tiny",
        f"server.max_body_bytes={MAX_BODY}",
        f"server.max_message_chars={MAX_MESSAGE}",
    )
    yield url, process.pid
    stop(process)


def body(content: str = QUESTION, **params) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **params}


def post(url: str, payload: dict | bytes, headers: dict | None = None) -> httpx.Response:
    content = payload if isinstance(payload, bytes) else json.dumps(payload)
    return httpx.post(
        f"{url}/v1/chat/completions",
        content=content,
        headers={"Content-Type": "application/json", **HEADERS, **(headers or {})},
        timeout=60,
    )


def text_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_dropped_streams_stop_decoding_and_a_short_request_answers_at_once(served) -> None:
    """Item 1: three clients open a long stream, read 3 chunks and leave; a fourth gives up waiting."""
    url, pid = served
    for _ in range(3):
        with (
            httpx.Client(headers=HEADERS, timeout=30) as http,
            http.stream("POST", f"{url}/v1/chat/completions", json=body(max_tokens=900, stream=True)) as r,
        ):
            assert r.status_code == 200
            for _, _line in zip(range(3), r.iter_lines(), strict=False):
                pass
    with pytest.raises(httpx.ReadTimeout):  # and one that stops waiting for a whole answer
        httpx.post(
            f"{url}/v1/chat/completions",
            json=body(max_tokens=900),
            headers=HEADERS,
            timeout=httpx.Timeout(30, read=0.5),
        )
    time.sleep(0.3)
    before = cpu_seconds(pid)
    time.sleep(1.0)
    busy = cpu_seconds(pid) - before
    assert busy < 0.3, f"{busy:.2f} s of CPU in 1 s: still decoding for clients that left"
    started = time.monotonic()
    short = post(url, body(max_tokens=4))
    elapsed = time.monotonic() - started
    assert short.status_code == 200 and elapsed < 3.0, f"{elapsed:.1f} s for 4 tokens"


def test_unsamplable_values_are_greedy_or_refused_and_never_hurt_a_neighbour(served) -> None:
    """Item 2: a temperature that overflows beside a greedy stream; a seed no generator takes."""
    url, _ = served
    api = client(url, KEY)
    alone = text_of(post(url, body(max_tokens=60, temperature=0)))

    def streamed(temperature: float) -> str:
        chunks = api.chat.completions.create(
            **body(max_tokens=60, temperature=temperature, stream=True), timeout=60
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    with ThreadPoolExecutor(2) as pool:  # decoded in one batch
        poison, victim = pool.submit(streamed, 1e-45), pool.submit(streamed, 0.0)
        assert victim.result() == alone
        assert poison.result() == alone  # below 1e-5 a temperature is greedy, not a division by ~0
    assert text_of(post(url, body(max_tokens=60, temperature=3.4132e-39))) == alone
    nan = json.dumps(body(max_tokens=2)).replace("}]", '}], "temperature": NaN').encode()
    for raw, param in [(body(seed=2**70), "seed"), (nan, "temperature")]:
        response = post(url, raw)
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text


def test_a_row_whose_scores_are_not_finite_fails_alone(tmp_path) -> None:
    """Item 2, in the engine: NaN scores end that row with ``error``; the row beside it is unchanged."""
    spec = typed(
        BaseModelConfig,
        compose_config("train", ["base_model=tiny", f"paths.output_dir={tmp_path}"]).base_model,
    )
    engine = Engine(load_causal_lm(spec), load_tokenizer(spec))
    model = engine.model
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())  # untie the output
    poisoned = engine.encode([{"role": "user", "content": "zebra zebra"}])
    healthy = engine.encode([{"role": "user", "content": QUESTION}])
    token = next(t for t in poisoned if t not in healthy)
    with torch.no_grad():
        model.get_input_embeddings().weight[token] = float("nan")  # only the first prompt holds it
    beside = GenerationRequest(healthy, Sampling(max_new_tokens=12))
    hot = Sampling(max_new_tokens=12, temperature=1.0, seed=1)
    failed, kept = engine.generate([GenerationRequest(poisoned, hot), beside])
    assert failed.finish_reason == "error"
    assert kept.text == engine.generate([beside])[0].text and kept.finish_reason in {"stop", "length"}


def test_large_bodies_and_messages_are_refused_and_tokenising_never_stalls_health(served) -> None:
    """Item 4: a body over max_body_bytes is a 413, a message over max_message_chars a 400."""
    url, _ = served
    huge = post(url, body("a" * (MAX_BODY + 10)))
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large", huge.text
    long = post(url, body("b" * (MAX_MESSAGE + 1)))
    assert long.status_code == 400 and long.json()["error"]["param"] == "messages", long.text
    assert "max_message_chars" in long.json()["error"]["message"]
    rng = random.Random(0)
    words = " ".join(
        f"{rng.choice(['rocket', 'mars', 'orbit', 'cat'])}{rng.randrange(999)}" for _ in range(110_000)
    )
    assert len(words) < MAX_MESSAGE < 3 * len(words) < MAX_BODY  # allowed through, tokenised, then too long
    three = body(words) | {"messages": [{"role": "user", "content": words}] * 3}
    latencies: list[float] = []
    with ThreadPoolExecutor(1) as pool:
        big = pool.submit(
            post, url, three
        )  # seconds of tokenising (on the event loop, /health waited it out)
        while not big.done():
            started = time.monotonic()
            httpx.get(f"{url}/health", timeout=30)
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
    assert big.result().json()["error"]["code"] == "context_length_exceeded"
    assert max(latencies) < 1.5, f"/health took {max(latencies):.2f} s while a prompt was tokenised"


def test_sampling_without_a_seed_is_fresh_and_with_one_repeats(served) -> None:
    """Item 5: "regenerate" gives another answer; a given seed gives the same one."""
    url, _ = served
    unseeded = {text_of(post(url, body(max_tokens=8, temperature=1.0))) for _ in range(3)}
    assert len(unseeded) > 1
    seeded = [text_of(post(url, body(max_tokens=8, temperature=1.0, seed=41))) for _ in range(2)]
    assert seeded[0] == seeded[1]


REFUSED = [
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}], "not supported"),
    ("tool_choice", "required", "not supported"),
    ("response_format", {"type": "json_object"}, "not supported"),
    ("logprobs", True, "not supported"),
    ("top_logprobs", 3, "not supported"),
    ("max_tokens", True, "integer"),
    ("n", True, "integer"),
    ("temperature", True, "number"),
    ("stream", 1, "boolean"),
]


def test_protocol_is_strict_and_every_error_is_openai_shaped(served) -> None:
    """Item 6: unsupported fields and loose types named, surrogates, routes, models/{id}, the key."""
    url, _ = served
    for field, value, words in REFUSED:
        error = post(url, body(**{"max_tokens": 2, field: value})).json()["error"]
        assert error["param"] == field and words in error["message"], (field, error)
    assert (
        text_of(post(url, body(max_tokens=2, logprobs=False, response_format={"type": "text"}))) is not None
    )
    surrogate = post(url, b'{"model": "tiny-llama", "messages": [{"role": "user", "content": "\\ud800"}]}')
    assert surrogate.status_code == 400 and "not valid JSON" in surrogate.json()["error"]["message"]
    unknown = httpx.get(f"{url}/v1/nothing", headers=HEADERS)
    assert unknown.status_code == 404 and set(unknown.json()) == {"error"}, unknown.text
    assert httpx.get(f"{url}/v1/models/{MODEL}", headers=HEADERS).json()["id"] == MODEL
    missing = httpx.get(f"{url}/v1/models/gpt-4o", headers=HEADERS)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    for scheme in ("bearer", "BEARER", "Bearer"):
        assert httpx.get(f"{url}/v1/models", headers={"authorization": f"{scheme} {KEY}"}).status_code == 200
    for header in ({}, {"authorization": f"Bearer {KEY}x"}, {"authorization": KEY}):
        refused = httpx.get(f"{url}/v1/models", headers=header)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.BadRequestError, match="not supported"):
        client(url, KEY).chat.completions.create(**body(max_tokens=2), tools=REFUSED[0][1])
