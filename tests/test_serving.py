"""Serving a tiny run: the official OpenAI client against tonetune-serve, faults and load, the chat."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from tests.conftest import compose_config
from tests.helpers import FailingEngine, free_port
from tonetune.evaluation.evaluate import evaluate
from tonetune.serving.served import load_served
from tonetune.serving.server import ServerSettings, build_app
from tonetune.synthesis.synthesize import synthesize
from tonetune.training.train import train

PROMPT = [{"role": "user", "content": "Tell me about rockets."}]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_run")
    cfg = compose_config(
        "train",
        [
            "base_model=tiny",
            "data=example",
            "logger=none",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "optimizer.lr=1e-2",
            f"paths.output_dir={root}",
        ],
    )
    train(cfg)
    return root


def stop(process: subprocess.Popen) -> None:
    """End a server that may have failed a test (its whole process group, to be safe)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def start_server(
    run_dir: Path | list[Path],
    tmp: Path,
    env: dict[str, str] | None = None,
    *extra: str,
    port: int | None = None,
):
    port = port or free_port()
    log = tmp / f"serve-{port}.log"
    runs = run_dir if isinstance(run_dir, list) else [run_dir]
    run_arg = f"run_dir={runs[0]}" if len(runs) == 1 else f"run_dir=[{','.join(map(str, runs))}]"
    with log.open("w") as sink:  # a file, not a pipe: a full pipe would block the server
        process = subprocess.Popen(
            ["tonetune-serve", run_arg, f"port={port}", f"hydra.run.dir={tmp / f'serve-{port}'}", *extra],
            env={**os.environ, **(env or {})},
            stdout=sink,
            stderr=sink,
            text=True,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        if process.poll() is not None or time.time() > deadline:
            stop(process)
            raise AssertionError(f"server did not start: {log.read_text()[-3000:]}")
        try:
            httpx.get(f"{url}/health")
            break
        except httpx.ConnectError:
            time.sleep(0.3)
    return process, url


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    process, url = start_server(tiny_run, tmp_path_factory.mktemp("serve"))
    yield url
    stop(process)


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def ask(url: str, content: str, **params) -> openai.types.chat.ChatCompletion:
    return client(url).chat.completions.create(
        model="elon_musk", messages=[{"role": "user", "content": content}], **params
    )


def test_models_endpoint_lists_the_run_by_persona_and_name(server, tiny_run) -> None:
    models = client(server).models.list()
    assert [m.id for m in models.data] == [f"elon_musk/{tiny_run.name}"]


def test_non_streaming_answer_with_usage_and_its_finish_reason(server, tiny_run) -> None:
    response = client(server).chat.completions.create(model="elon_musk", messages=PROMPT, max_tokens=8)
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert response.model == f"elon_musk/{tiny_run.name}"  # the id served, not the alias asked for
    usage = response.usage
    assert usage.prompt_tokens > 10 and 0 < usage.completion_tokens <= 8
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # an undertrained tiny model does not stop by itself within 8 tokens: the limit cut it
    assert (choice.finish_reason == "length") == (usage.completion_tokens == 8)
    assert choice.finish_reason in {"stop", "length"}


def test_finish_reason_is_length_when_max_tokens_cuts_streamed_or_not(server) -> None:
    cut = ask(server, "Tell me everything about Mars.", max_tokens=1)
    assert cut.choices[0].finish_reason == "length" or cut.usage.completion_tokens == 1
    chunks = list(
        client(server).chat.completions.create(
            model="elon_musk",
            messages=PROMPT,
            max_tokens=1,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    whole = ask(server, PROMPT[0]["content"], max_tokens=1)
    assert reasons == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_streaming_matches_the_non_streaming_answer(server) -> None:
    api = client(server)
    whole = api.chat.completions.create(model="elon_musk", messages=PROMPT, max_tokens=12)
    chunks = list(
        api.chat.completions.create(
            model="elon_musk",
            messages=PROMPT,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]


def test_unknown_model_is_404_model_not_found(server) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client(server).chat.completions.create(model="gpt-4o", messages=PROMPT, max_tokens=2)
    assert err.value.body["code"] == "model_not_found" and err.value.body["param"] == "model"


INVALID = [
    ({"messages": []}, "messages"),
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages"),
    ({"messages": [{"role": "system", "content": "Be terse."}]}, "messages"),
    ({"temperature": -0.5}, "temperature"),
    ({"temperature": 1, "top_p": -1}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": -3}, "max_tokens"),
    ({"n": 50}, "n"),
    ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"messages": [{"role": "user", "content": "word " * 1500}]}, "messages"),
]


def invalid_body(case: dict) -> dict:
    return {"model": "elon_musk", "messages": PROMPT, "max_tokens": 4, **case}


@pytest.mark.parametrize(("case", "param"), INVALID, ids=[p + str(i) for i, (_, p) in enumerate(INVALID)])
def test_invalid_requests_get_a_400_naming_the_field(server, case, param) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", json=invalid_body(case), timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and param in error["message"]
    assert ask(server, "Still there?", max_tokens=2).usage.completion_tokens > 0


def test_malformed_json_is_a_400(server) -> None:
    response = httpx.post(
        f"{server}/v1/chat/completions",
        content='{"model": "m", "messages": [',
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


GREEDY_QUESTIONS = [
    f"Question number {i}: what do you think about {topic}?"
    for i, topic in enumerate(["rockets", "cats", "Mars", "tunnels", "memes", "coffee", "AI", "cars"])
]


def test_fault_and_load_every_client_as_if_alone(server) -> None:
    """200 requests from 20 clients; a third invalid; greedy answers equal the same request alone."""
    alone = {
        q: ask(server, q, max_tokens=10, temperature=0).choices[0].message.content for q in GREEDY_QUESTIONS
    }
    rng = random.Random(0)
    jobs = []
    for i in range(200):
        if i % 3 == 0:
            case, param = INVALID[rng.randrange(len(INVALID))]
            jobs.append(("invalid", invalid_body(case), param))
        elif i % 3 == 1:
            q = GREEDY_QUESTIONS[rng.randrange(len(GREEDY_QUESTIONS))]
            jobs.append(
                (
                    "greedy",
                    {
                        "model": "elon_musk",
                        "messages": [{"role": "user", "content": q}],
                        "max_tokens": 10,
                        "temperature": 0,
                    },
                    q,
                )
            )
        else:
            body = {
                "model": "elon_musk",
                "messages": PROMPT,
                "max_tokens": 10,
                "temperature": 2.0,
                "top_p": 0.9,
                "seed": i,
            }
            jobs.append(("sampled", body, None))

    def send(job):
        kind, body, expected = job
        response = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=120)
        return kind, expected, response.status_code, response.json()

    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(send, jobs))
    elapsed = time.monotonic() - started
    for kind, expected, status, body in results:
        if kind == "invalid":
            assert status == 400 and body["error"]["param"] == expected, body
        else:
            assert status == 200, body
        if kind == "greedy":
            assert body["choices"][0]["message"]["content"] == alone[expected]
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    assert elapsed < 120


def test_a_greedy_request_stays_greedy_beside_sampled_ones(server) -> None:
    question = GREEDY_QUESTIONS[0]
    expected = ask(server, question, max_tokens=10, temperature=0).choices[0].message.content

    def hot(i: int) -> str:
        return ask(server, question, max_tokens=10, temperature=2.0, seed=i).choices[0].message.content

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(hot, i) for i in range(6)]
        greedy = [pool.submit(ask, server, question, max_tokens=10, temperature=0) for _ in range(2)]
        sampled = [f.result() for f in futures]
    assert [g.result().choices[0].message.content for g in greedy] == [expected, expected]
    assert len(set(sampled)) > 1  # the hot ones really sampled


def test_n_choices_each_with_its_own_seed(server) -> None:
    response = ask(server, "Pick a number?", max_tokens=6, temperature=1.5, n=3, seed=7)
    assert [c.index for c in response.choices] == [0, 1, 2]
    again = ask(server, "Pick a number?", max_tokens=6, temperature=1.5, n=3, seed=7)
    assert [c.message.content for c in again.choices] == [c.message.content for c in response.choices]


DISTINCT_QUESTIONS = [
    "What is your favourite rocket?",
    "How do you handle criticism online?",
    "Which book changed your life?",
    "Would you ever run for office?",
    "What do you eat for breakfast?",
    "How should cities fix traffic jams?",
    "Do you believe in aliens?",
    "What advice would you give a new founder?",
    "Which video game do you play most?",
    "How many hours do you sleep?",
]


def test_server_is_a_teacher_and_a_reference_contestant(server, tiny_run, tmp_path) -> None:
    """The synthesis teacher and the evaluation's large prompted model, both pointed at tonetune-serve."""
    from datasets import load_from_disk

    questions = tmp_path / "questions.txt"
    questions.write_text("\n".join(DISTINCT_QUESTIONS))
    cache = f"paths.response_cache={tmp_path / 'responses.sqlite'}"
    filters_off = [
        f"filters.{name}=false" for name in ("truncated", "length", "markers", "refusal", "unparseable")
    ]
    synth_cfg = compose_config(
        "synthesize",
        [
            "teacher=openai_compatible",
            f"teacher.base_url={server}/v1",
            "teacher.model=elon_musk",
            "questions.source=files",
            f"questions.files=[{questions}]",
            "answers.max_tokens=6",
            "contrast.max_tokens=6",
            "preferences.enabled=false",
            *filters_off,
            "logger=none",
            f"data_dir={tmp_path / 'data'}",
            f"paths.output_dir={tmp_path / 'synth'}",
            cache,
        ],
    )
    report, _ = synthesize(synth_cfg)
    # An API teacher also answers the contrast split: the same questions as other personas, and plainly.
    contrast = report["contrast"]["requested"]
    assert contrast >= len(DISTINCT_QUESTIONS)
    assert report["usage"]["requests_sent"] == len(DISTINCT_QUESTIONS) + contrast
    assert 0 < report["usage"]["completion_tokens"] <= 6 * report["usage"]["requests_sent"]
    data = load_from_disk(str(tmp_path / "data"))
    assert sorted(q for split in data.values() for q in split["question"]) == sorted(DISTINCT_QUESTIONS)

    eval_cfg = compose_config(
        "evaluate",
        [
            f"run_dir={tiny_run}",
            "+reference=openai_compatible",
            f"evaluation.contestants.large_prompted.endpoint.base_url={server}/v1",
            "evaluation.contestants.large_prompted.endpoint.model=elon_musk",
            "evaluation.contestants.base_prompted=null",
            "evaluation.questions.limit=4",
            "evaluation.sampling.max_new_tokens=6",
            "evaluation.classifier.max_examples=10",
            "evaluation.classifier.folds=2",
            "logger=none",
            f"paths.output_dir={tmp_path / 'eval'}",
            cache,
        ],
    )
    result, objects = evaluate(eval_cfg)
    # prompted with the persona, so its answers differ from finetuned's; tests/test_endpoint_parity.py
    # checks that the same model answers the same through the server and in process
    assert all(objects["answers"]["large_prompted"].texts)
    assert set(result["metrics"]) == {"base", "finetuned", "large_prompted", "reference"}
    assert "large_prompted" in (tmp_path / "eval" / "report.md").read_text()


def test_api_key_guards_everything_but_health(tiny_run, tmp_path) -> None:
    process, url = start_server(tiny_run, tmp_path, {"TONETUNE_SERVE_API_KEY": "s3cret"})
    try:
        with pytest.raises(openai.AuthenticationError):
            client(url, "wrong").chat.completions.create(model="elon_musk", messages=PROMPT, max_tokens=2)
        ok = client(url, "s3cret").chat.completions.create(model="elon_musk", messages=PROMPT, max_tokens=2)
        assert ok.usage.completion_tokens > 0
        assert httpx.get(f"{url}/health").status_code == 200
        for path in ("/docs", "/openapi.json", "/v1/models"):
            assert httpx.get(f"{url}{path}").status_code == 401, path
            assert httpx.get(f"{url}{path}", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    finally:
        stop(process)


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket_to(port):
        return True
    return False


@contextlib.contextmanager
def socket_to(port: int):
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    try:
        yield sock
    finally:
        sock.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_process_and_frees_the_port(tiny_run, tmp_path, sig) -> None:
    port = free_port()
    process, url = start_server(tiny_run, tmp_path, None, port=port)

    def long_answer() -> None:
        with contextlib.suppress(Exception):
            list(
                client(url).chat.completions.create(
                    model="elon_musk", messages=PROMPT, max_tokens=200, stream=True
                )
            )

    threading.Thread(target=long_answer, daemon=True).start()  # a client mid-answer must not keep it alive
    time.sleep(0.5)
    os.kill(process.pid, sig)
    deadline = time.monotonic() + 5
    while (process.poll() is None or listening(port)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is not None and not listening(port)
    group_alive = subprocess.run(
        ["pgrep", "-g", str(process.pid)], capture_output=True, text=True
    ).stdout.split()
    assert group_alive == []
    again, url = start_server(tiny_run, tmp_path, None, port=port)
    try:
        assert ask(url, "Back?", max_tokens=2).usage.completion_tokens > 0
    finally:
        stop(again)


def test_a_fault_mid_stream_is_raised_by_the_official_client(tiny_run) -> None:
    """Before the first token: an HTTP error; after it: an error event the client raises."""
    served = load_served([str(tiny_run)], None, None, merge_adapter=True)
    served.engine.__class__ = FailingEngine
    port = free_port()
    config = uvicorn.Config(
        build_app(served, ServerSettings()), host="127.0.0.1", port=port, log_level="warning"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        FailingEngine.fail_after = 3
        with pytest.raises(openai.APIError, match="injected device fault"):
            list(
                client(url).chat.completions.create(
                    model="elon_musk", messages=PROMPT, max_tokens=20, stream=True
                )
            )
        FailingEngine.fail_after = 0
        with pytest.raises(openai.InternalServerError):
            list(
                client(url).chat.completions.create(
                    model="elon_musk", messages=PROMPT, max_tokens=20, stream=True
                )
            )
        with pytest.raises(openai.InternalServerError):
            client(url).chat.completions.create(model="elon_musk", messages=PROMPT, max_tokens=20)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_terminal_chat_keeps_the_conversation_and_resets(tiny_run, tmp_path) -> None:
    result = subprocess.run(
        ["tonetune-chat", f"run_dir={tiny_run}", "max_new_tokens=5", f"hydra.run.dir={tmp_path / 'chat'}"],
        input="Hello there\nAnd again\n/reset\nHi\n/exit\n",
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert out.startswith(f"Chatting with elon_musk/{tiny_run.name}.")
    assert "(conversation reset)" in out
    context = [int(line.split()[0][1:]) for line in out.splitlines() if line.startswith("[")]
    assert len(context) == 3
    assert context[1] > context[0] + 5  # the second turn sees the first
    assert context[2] < context[1]  # after /reset it starts over
    assert "Warning" not in result.stderr and "warn" not in out.lower()
    assert "Loading" not in result.stderr  # no library progress bars in the terminal either


def test_server_decodes_with_the_runs_generation_defaults(tiny_run) -> None:
    saved = json.loads((tiny_run / "model" / "generation_config.json").read_text())
    assert saved["repetition_penalty"] == 1.15 and not saved.get("do_sample")
    served = load_served([str(tiny_run)], None, None, merge_adapter=True)
    (model,) = served.models.values()
    assert model.sampling.repetition_penalty == 1.15 and model.sampling.greedy


def test_one_server_answers_two_personas_each_as_if_served_alone(tiny_run, tmp_path) -> None:
    yoda = tmp_path / "yoda"
    train(
        compose_config(
            "train",
            [
                "base_model=tiny",
                "data=example",
                "persona=yoda",
                "seed=3",
                "logger=none",
                "trainer.max_epochs=1",
                "optimizer.lr=1e-2",
                "trainer.enable_progress_bar=false",
                f"paths.output_dir={yoda}",
            ],
        )
    )
    both, both_url = start_server([tiny_run, yoda], tmp_path)
    alone = [start_server(run, tmp_path, None, "merge_adapter=false") for run in (tiny_run, yoda)]
    try:
        ids = sorted(m.id for m in client(both_url).models.list().data)
        assert ids == sorted([f"elon_musk/{tiny_run.name}", f"yoda/{yoda.name}"])
        for (_, url), persona in zip(alone, ("elon_musk", "yoda"), strict=True):
            for question in GREEDY_QUESTIONS[:3]:
                together = client(both_url).chat.completions.create(
                    model=persona,
                    messages=[{"role": "user", "content": question}],
                    max_tokens=10,
                    temperature=0,
                )
                single = client(url).chat.completions.create(
                    model=persona,
                    messages=[{"role": "user", "content": question}],
                    max_tokens=10,
                    temperature=0,
                )
                assert together.choices[0].message.content == single.choices[0].message.content
        answers = {
            p: ask(both_url, GREEDY_QUESTIONS[0], max_tokens=10, temperature=0).choices[0].message.content
            for p in ("elon_musk",)
        }
        yoda_answer = client(both_url).chat.completions.create(
            model="yoda",
            messages=[{"role": "user", "content": GREEDY_QUESTIONS[0]}],
            max_tokens=10,
            temperature=0,
        )
        assert yoda_answer.choices[0].message.content != answers["elon_musk"]  # two adapters, two answers
        with pytest.raises(openai.NotFoundError):
            client(both_url).chat.completions.create(model="pirate_captain", messages=PROMPT, max_tokens=2)
    finally:
        for process, _ in [(both, both_url), *alone]:
            stop(process)


def test_serving_a_public_address_without_a_key_warns(tiny_run, tmp_path) -> None:
    port = free_port()
    process, _ = start_server(tiny_run, tmp_path, {"TONETUNE_SERVE_API_KEY": ""}, "host=0.0.0.0", port=port)
    stop(process)
    log = (tmp_path / f"serve-{port}.log").read_text()
    assert f"Serving on 0.0.0.0 without an API key: anyone who can reach port {port} can use it" in log
