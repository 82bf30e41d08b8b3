"""Serving a tiny run: the OpenAI client against tonetune-serve, the terminal chat, and exports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
import torch
from datasets import load_from_disk
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import compose_config
from tonetune.evaluation.evaluate import evaluate
from tonetune.generation import Sampling, generate_chat
from tonetune.runs import load_trained
from tonetune.serving.export import export_run
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
            f"paths.output_dir={root}",
        ],
    )
    train(cfg)
    return root


def stop(process: subprocess.Popen) -> None:
    """End the server and every process it started (LitServe forks API and inference workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(run_dir: Path, tmp: Path, env: dict[str, str] | None = None, *extra: str):
    port = free_port()
    log = tmp / f"serve-{port}.log"
    with log.open("w") as sink:  # a file, not a pipe: a full pipe would block the server
        process = subprocess.Popen(
            [
                "tonetune-serve",
                f"run_dir={run_dir}",
                f"port={port}",
                f"hydra.run.dir={tmp / f'serve-{port}'}",
                *extra,
            ],
            env={**os.environ, **(env or {})},
            stdout=sink,
            stderr=sink,
            text=True,
            start_new_session=True,  # its own process group: stop() ends LitServe's workers too
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        if process.poll() is not None or time.time() > deadline:
            stop(process)
            raise AssertionError(f"server did not start: {log.read_text()[-3000:]}")
        key = (env or {}).get("TONETUNE_SERVE_API_KEY")
        try:
            httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {key}"} if key else {})
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
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_models_endpoint_lists_the_run(server, tiny_run) -> None:
    models = client(server).models.list()
    assert [m.id for m in models.data] == [f"tonetune-{tiny_run.name}"]


def test_non_streaming_answer_with_usage(server) -> None:
    response = client(server).chat.completions.create(model="m", messages=PROMPT, max_tokens=8, temperature=0)
    assert response.object == "chat.completion"
    assert response.choices[0].message.role == "assistant"
    assert isinstance(response.choices[0].message.content, str)
    usage = response.usage
    assert usage.prompt_tokens > 10 and 0 < usage.completion_tokens <= 8
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streaming_matches_the_non_streaming_answer(server) -> None:
    api = client(server)
    whole = api.chat.completions.create(model="m", messages=PROMPT, max_tokens=12, temperature=0)
    chunks = list(
        api.chat.completions.create(
            model="m",
            messages=PROMPT,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 3
    assert streamed == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_eight_concurrent_requests(server) -> None:
    api = client(server)

    def ask(i: int) -> openai.types.chat.ChatCompletion:
        return api.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"Question {i}?"}], max_tokens=6, temperature=0
        )

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(ask, range(8)))
    assert all(r.usage.completion_tokens > 0 for r in responses)
    assert len({r.id for r in responses}) == 8


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "m", "messages": []}, 400, "messages must contain at least one message"),
        ({"model": "m", "messages": "hello"}, 422, "valid list"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, 422, "valid string"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "word " * 1500}]},
            400,
            "context is 1024 tokens",
        ),
        ('{"model": "m", "messages": [', 422, "JSON decode error"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(server, body, status, message) -> None:
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    response = httpx.post(
        f"{server}/v1/chat/completions", headers={"Content-Type": "application/json"}, timeout=60, **kwargs
    )
    assert response.status_code == status
    assert message in response.text
    ok = client(server).chat.completions.create(model="m", messages=PROMPT, max_tokens=2)
    assert ok.usage.completion_tokens > 0


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
            "questions.generate=false",
            f"questions.files=[{questions}]",
            "answers.max_tokens=6",
            *filters_off,
            "logger=none",
            f"data_dir={tmp_path / 'data'}",
            f"paths.output_dir={tmp_path / 'synth'}",
            cache,
        ],
    )
    report, _ = synthesize(synth_cfg)
    assert report["usage"]["requests_sent"] == len(DISTINCT_QUESTIONS)
    assert 0 < report["usage"]["completion_tokens"] <= 6 * len(DISTINCT_QUESTIONS)
    data = load_from_disk(str(tmp_path / "data"))
    assert sorted(q for split in data.values() for q in split["question"]) == sorted(DISTINCT_QUESTIONS)

    eval_cfg = compose_config(
        "evaluate",
        [
            f"run_dir={tiny_run}",
            "+reference=openai_compatible",
            f"evaluation.contestants.large_prompted.endpoint.base_url={server}/v1",
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
    served = objects["answers"]["large_prompted"]
    assert len(served.texts) == 4 and set(served.finish_reasons) <= {"stop", "length"}
    metrics = result["metrics"]
    assert set(metrics) == {"base", "finetuned", "large_prompted", "reference"}
    assert "stopped" in metrics["large_prompted"] and "stopped" not in metrics["reference"]
    assert "large_prompted" in (tmp_path / "eval" / "report.md").read_text()


def test_api_key_is_enforced_when_set(tiny_run, tmp_path) -> None:
    process, url = start_server(tiny_run, tmp_path, {"TONETUNE_SERVE_API_KEY": "s3cret"})
    try:
        with pytest.raises(openai.AuthenticationError):
            client(url, "wrong").chat.completions.create(model="m", messages=PROMPT, max_tokens=2)
        ok = client(url, "s3cret").chat.completions.create(model="m", messages=PROMPT, max_tokens=2)
        assert ok.usage.completion_tokens > 0
    finally:
        stop(process)


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
    assert out.startswith(f"Chatting with tonetune-elon_musk-{tiny_run.name}.")
    assert "(conversation reset)" in out
    context = [int(line.split()[0][1:]) for line in out.splitlines() if line.startswith("[")]
    assert len(context) == 3
    assert context[1] > context[0] + 5  # the second turn sees the first
    assert context[2] < context[1]  # after /reset it starts over


def greedy_ids(model, tokenizer, n: int = 16) -> list[list[int]]:
    """Greedy continuations that may not stop early (an undertrained model can end at once)."""
    enc = tokenizer.apply_chat_template(
        [PROMPT], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[:, enc["input_ids"].shape[1] :].tolist()


def test_export_merges_checks_and_writes_hf_and_gguf(tiny_run, tmp_path) -> None:
    out = tmp_path / "export"
    result = export_run(tiny_run, out, ["Hi?", "Why rockets?"], 8, {"enabled": True, "dtype": "f32"})
    adapter_model, tokenizer, _ = load_trained(tiny_run, keep_quantized=False)
    merged = AutoModelForCausalLM.from_pretrained(out / "hf")
    assert greedy_ids(merged, tokenizer) == greedy_ids(adapter_model, tokenizer)
    card = (out / "hf" / "README.md").read_text()
    assert "Elon Musk on Twitter" in card and "r=16, alpha=32" in card
    assert AutoTokenizer.from_pretrained(out / "hf").chat_template == tokenizer.chat_template

    from_gguf = AutoModelForCausalLM.from_pretrained(out / "gguf", gguf_file="model.gguf")
    ids = torch.tensor([[1, 20, 300, 4000, 2]])
    with torch.no_grad():
        assert torch.allclose(from_gguf(ids).logits, merged(ids).logits, atol=1e-4)
    gguf_tokenizer = AutoTokenizer.from_pretrained(out / "gguf", gguf_file="model.gguf")
    assert gguf_tokenizer("Rockets! 🚀 #Mars")["input_ids"] == tokenizer("Rockets! 🚀 #Mars")["input_ids"]
    assert greedy_ids(from_gguf, gguf_tokenizer) == greedy_ids(merged, tokenizer)
    modelfile = (out / "gguf" / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./model.gguf") and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert json.loads((out / "export.json").read_text())["gguf"] == result["gguf"]


def test_export_refuses_architectures_it_cannot_write(tmp_path) -> None:
    from tonetune.serving.gguf_export import GGUFExportError, write_gguf

    class Config:
        model_type = "phi3"

    class Model:
        config = Config()

    with pytest.raises(GGUFExportError, match=r"not 'phi3'.*convert_hf_to_gguf\.py"):
        write_gguf(Model(), None, tmp_path, tmp_path / "x.gguf")


@pytest.mark.slow
def test_embedded_merge_and_gguf_give_the_same_greedy_answer(make_train_cfg, tmp_path) -> None:
    _, objects = train(
        make_train_cfg("base_model=smollm2_135m", "data=example", "trainer.max_epochs=1", "optimizer.lr=1e-3")
    )
    run_dir = Path(objects["run_dir"])
    result = export_run(
        run_dir, tmp_path / "export", ["What do you think about Mars?"], 24, {"enabled": True, "dtype": "f16"}
    )
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "export" / "gguf", gguf_file="model.gguf")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "export" / "gguf", gguf_file="model.gguf")
    answer = generate_chat(
        model,
        tokenizer,
        [[{"role": "user", "content": "What do you think about Mars?"}]],
        Sampling(max_new_tokens=24),
        progress=False,
    )[0].text
    assert answer == result["check_answers"][0] and len(answer.split()) > 2
