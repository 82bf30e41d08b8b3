"""Synthesis through the real openai client against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
from datasets import load_from_disk

from tests.conftest import compose_config
from tests.openai_stub import NEAR_DUPLICATES, REFUSAL, SHY_ANSWER, StubOpenAI, digest
from tonetune.config import typed
from tonetune.data.question_lists import Question, read_question_file
from tonetune.generation.engine import Engine, GenerationRequest
from tonetune.generation.sampling import Sampling
from tonetune.models.base_models import load_causal_lm, load_tokenizer
from tonetune.schemas import BaseModelConfig
from tonetune.synthesis.dedup import DedupReport, deduplicate, normalise
from tonetune.synthesis.filters import AnswerFilter
from tonetune.synthesis.questions import LIST_INSTRUCTIONS, parse_question_list
from tonetune.synthesis.synthesize import synthesize
from tonetune.training.train import train

QUESTIONS_PER_PROMPT = 6
EMBEDDED = typed(BaseModelConfig, compose_config("synthesize", ["paths.output_dir=/tmp/unused"]).base_model)


@pytest.fixture
def stub():
    server = StubOpenAI()
    server.base_url = server.start()
    yield server
    server.stop()


def synth_overrides(base_url: str, root: Path, *extra: str) -> list[str]:
    return [
        "teacher=openai_compatible",
        f"teacher.base_url={base_url}",
        "teacher.model=stub-model",
        "teacher.timeout=1",
        "teacher.stall_timeout=30",
        "teacher.max_retries=5",
        "teacher.concurrency=4",
        f"question_set.questions_per_prompt={QUESTIONS_PER_PROMPT}",
        "answers.per_question=2",
        "logger=none",
        f"data_dir={root / 'data' / 'elon_musk'}",
        f"paths.response_cache={root / 'cache' / 'responses.sqlite'}",
        *extra,
    ]


def run_synthesize(base_url: str, root: Path, *extra: str) -> tuple[dict, dict]:
    cfg = compose_config(
        "synthesize", [*synth_overrides(base_url, root, *extra), f"paths.output_dir={root / 'run'}"]
    )
    return synthesize(cfg)


def dataset_rows(path: Path) -> dict[str, list[tuple[str, str, str]]]:
    data = load_from_disk(str(path))
    return {
        split: sorted(
            zip(d["question"], [m[-1]["content"] for m in d["messages"]], d["category"], strict=True)
        )
        for split, d in data.items()
    }


# -- pieces ------------------------------------------------------------------------------------


def test_dedup_removes_planted_duplicates_and_keeps_distinct_questions() -> None:
    planted = [
        Question(NEAR_DUPLICATES[0], "funny"),
        Question(NEAR_DUPLICATES[1], "funny"),  # near-duplicate: swap / switch
        Question("WOULD you swap lives with a cartoon character!", "funny"),  # exact after normalising
        Question("What is your favourite rocket?", "tech"),
        Question("How do you stay productive when everything breaks?", "tech"),
        Question("Should billionaires pay more tax?", "controversial"),
    ]
    report = DedupReport()
    kept = deduplicate(planted, [], threshold=0.85, report=report)
    assert [q.text for q in kept] == [planted[0].text, *[q.text for q in planted[3:]]]
    assert (report.exact, report.near) == (1, 1)
    assert normalise("Hello,  World?!") == "hello world"


def test_question_lists_parse_from_json_numbered_and_run_on_text() -> None:
    assert parse_question_list('{"questions": ["Why go to Mars?", "Is AI safe for everyone?"]}') == [
        "Why go to Mars?",
        "Is AI safe for everyone?",
    ]
    assert parse_question_list('```json\n["What is love today?"]\n```') == ["What is love today?"]
    text = "Sure! Here they are:\n1. What drives you every day? 2) Who inspires you most?\n"
    text += "- Question: Q: Why rockets?"
    assert parse_question_list(text) == ["What drives you every day?", "Who inspires you most?"]
    assert parse_question_list("I cannot help with that.") == []


def test_question_files_text_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_text("Why Mars?\n\nWhat about Venus?\n")
    (tmp_path / "q.jsonl").write_text('{"question": "Why?", "category": "x"}\n{"question": ""}\n')
    assert [q.text for q in read_question_file(tmp_path / "q.txt")] == ["Why Mars?", "What about Venus?"]
    with pytest.raises(Exception, match=r"q.jsonl line 2: field 'question'"):
        read_question_file(tmp_path / "q.jsonl")


def test_filters_drop_planted_bad_answers(tmp_path: Path) -> None:
    persona = compose_config("synthesize", [f"paths.output_dir={tmp_path}"]).persona
    check = AnswerFilter(persona)
    assert check.reason("Mars is the plan, obviously 🚀 #Mars") is None
    assert check.reason("   ") == "empty"
    assert check.reason(REFUSAL + " 🚀 #Mars") == "refusal"
    assert check.reason("I'm sorry, but I can't help with that 🚀 #Nope") == "refusal"
    assert check.reason(" ".join(["word"] * 80) + " 🚀 #Long") == "length"
    assert check.reason("Too short 🚀 #X") == "length"
    assert check.reason("Mars is the plan, obviously 🚀 and soon") == "missing_hashtag"
    assert check.reason("Mars is the plan, obviously #Mars") == "missing_emoji"
    assert check.reason('{"answer": "Mars is the plan 🚀 #Mars"}') == "unparseable"
    assert check.reason("Mars is the plan, obviously 🚀 #Mars", finish_reason="length") == "truncated"


# -- end to end --------------------------------------------------------------------------------


def test_end_to_end_dataset_that_train_consumes(stub, tmp_path: Path, make_train_cfg) -> None:
    report, _ = run_synthesize(stub.base_url, tmp_path)
    data_dir = tmp_path / "data" / "elon_musk"
    assert dataset_rows(data_dir) == dataset_rows(tmp_path / "run" / "dataset")
    data = load_from_disk(str(data_dir))
    assert set(data) == {"train", "validation", "test"}
    assert set(data["train"].column_names) == {"messages", "question", "category"}
    questions = {s: set(d["question"]) for s, d in data.items()}
    assert not (questions["train"] & questions["test"]) and not (questions["train"] & questions["validation"])
    all_questions = [q for d in data.values() for q in set(d["question"])]
    assert Counter(Counter(all_questions).values()) == {1: len(all_questions)}
    assert report["questions"]["by_category"] == {
        c: QUESTIONS_PER_PROMPT for c in ["controversial", "tech_entrepreneur", "funny", "hilarious"]
    }
    assert report["questions"]["exact_duplicates"] >= 4 and report["questions"]["near_duplicates"] >= 1
    kept = {normalise(q) for q in all_questions}
    assert sum(normalise(q) in kept for q in NEAR_DUPLICATES) == 1
    assert report["answers"]["kept"] == 2 * len(all_questions)
    for split in data.values():
        for messages in split["messages"]:
            assert [m["role"] for m in messages] == ["user", "assistant"]
    card = (data_dir / "README.md").read_text()
    assert "near-duplicates removed" in card and "stub-model" in card
    openai_lines = (data_dir / "openai_train.jsonl").read_text().splitlines()
    assert len(openai_lines) == len(data["train"])

    metrics, _ = train(
        make_train_cfg("data=synthesized", f"paths.data_root={tmp_path / 'data'}", "debug=fdr")
    )
    assert metrics["params/trainable"] > 0


def test_question_shares_are_asked_for_in_short_lists(tmp_path: Path) -> None:
    asked: list[int] = []

    def numbered_questions(body: dict) -> str | None:
        if body["messages"][0]["content"] != LIST_INSTRUCTIONS:
            return None  # answers: the stub's defaults
        asked.append(int(re.search(r"\b(\d+)\b", body["messages"][1]["content"]).group(1)))
        first = 100 * len(asked)
        return "\n".join(f"{i + 1}. Is this question number {first + i}?" for i in range(asked[-1]))

    server = StubOpenAI(script=numbered_questions)
    try:
        report, _ = run_synthesize(
            server.start(),
            tmp_path,
            "question_set.questions_per_prompt=10",
            "questions.per_request=4",
            "questions.near_duplicate_threshold=1.01",
            "answers.per_question=1",
        )
    finally:
        server.stop()
    assert asked == [4] * 12  # ceil(10 / 4) requests for each of the 4 prompts, in one round
    assert report["questions"]["by_category"] == {
        c: 10 for c in ["controversial", "tech_entrepreneur", "funny", "hilarious"]
    }


def test_user_questions_and_filters_are_counted(stub, tmp_path: Path) -> None:
    questions = tmp_path / "mine.txt"
    questions.write_text(
        "Will you refuse this one?\nCan you ramble about rockets?\nWhat is your dream car?\n"
        "Why do you love Mars so much?\nHow do rockets land?\n"
    )
    report, objects = run_synthesize(
        stub.base_url,
        tmp_path,
        "questions.source=files",
        f"questions.files=[{questions}]",
        "answers.per_question=1",
    )
    assert report["questions"]["from_files"] == 5
    assert report["answers"]["rejected"] == {"refusal": 3, "length": 3}  # 3 attempts each
    assert report["answers"]["questions_without_answer"] == 2
    kept = {row["question"] for row in objects["rows"]}
    assert kept == {"What is your dream car?", "Why do you love Mars so much?", "How do rockets land?"}


def test_preference_pairs_reject_the_students_own_answer_and_the_filtered_ones(stub, tmp_path: Path) -> None:
    questions = tmp_path / "mine.txt"
    questions.write_text(
        "What is your shy opinion on Mondays?\nWhat is your dream car?\nWill you refuse this one?\n"
    )
    report, _ = run_synthesize(
        stub.base_url,
        tmp_path,
        "questions.source=files",
        f"questions.files=[{questions}]",
        "answers.per_question=1",
        "preferences.filtered_as_rejected=true",
        "split.validation=0",
        "split.test=0",
    )
    data_dir = tmp_path / "data" / "elon_musk"
    pairs = [json.loads(line) for line in (data_dir / "preferences_train.jsonl").read_text().splitlines()]
    chosen = {row[0]: row[1] for row in dataset_rows(data_dir)["train"]}
    assert set(chosen) == {
        "What is your shy opinion on Mondays?",
        "What is your dream car?",
    }  # refused: no pair
    assert sorted((p["question"], p["rejected_by"]) for p in pairs) == [
        ("What is your dream car?", "student"),
        ("What is your shy opinion on Mondays?", "filters"),
        ("What is your shy opinion on Mondays?", "student"),
    ]
    engine = Engine(load_causal_lm(EMBEDDED), load_tokenizer(EMBEDDED))  # the student, asked by itself
    for p in pairs:
        assert p["prompt"] == [{"role": "user", "content": p["question"]}]  # no persona prompt
        assert p["chosen"] == [{"role": "assistant", "content": chosen[p["question"]]}]
        rejected = p["rejected"][0]["content"]
        if p["rejected_by"] == "filters":
            assert rejected == SHY_ANSWER
        else:
            request = GenerationRequest(engine.encode(p["prompt"]), Sampling(max_new_tokens=120))
            assert rejected == engine.generate([request])[0].text.strip()
    assert report["preferences"]["from_student"] == 2 and report["preferences"]["from_filters"] == 1


def test_faults_retried_until_every_answer_arrives(tmp_path: Path) -> None:
    server = StubOpenAI(fault_rate=0.3, stall_seconds=2.5)
    base_url = server.start()
    try:
        report, objects = run_synthesize(base_url, tmp_path)
    finally:
        server.stop()
    faults = server.faults()
    assert set(faults) == {"rate_limited", "server_error", "stalled"}, faults
    assert sum(faults.values()) >= 0.2 * len(server.chat_requests())
    rows = [(r["question"], r["sample"]) for r in objects["rows"]]
    assert len(rows) == len(set(rows)) == 2 * report["questions"]["kept"] == 2 * 4 * QUESTIONS_PER_PROMPT
    assert report["answers"]["rejected"] == {}


def test_secret_key_never_reaches_files_or_logs(tmp_path: Path) -> None:
    sentinel = "sk-tonetune-SENTINEL-7f3a9c"
    server = StubOpenAI(api_key=sentinel)
    base_url = server.start()
    env = {**os.environ, "OPENAI_API_KEY": sentinel, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    try:
        result = subprocess.run(
            [
                "tonetune-synthesize",
                *synth_overrides(base_url, tmp_path, "teacher=openai", "teacher.max_retries=1"),
                "logger=wandb",
                f"hydra.run.dir={tmp_path / 'run'}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    assert server.seen_authorization == {f"Bearer {sentinel}"}  # the key was used...
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any("wandb" in p.parts for p in written) and any(p.name == "synthesize.log" for p in written)
    for path in written:  # ...and is nowhere on disk
        assert sentinel.encode() not in path.read_bytes(), path
    assert sentinel not in result.stdout + result.stderr
    log = next(p for p in written if p.name == "synthesize.log").read_text()
    assert "Dataset written to" in log and "HTTP Request" not in log + result.stderr  # no line per request


def test_missing_api_key_is_a_one_line_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    result = subprocess.run(
        [
            "tonetune-synthesize",
            *synth_overrides("http://127.0.0.1:9/v1", tmp_path, "teacher=openai"),
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "tonetune-synthesize: error: set the environment variable OPENAI_API_KEY (teacher.api_key_env) "
        "to your API key"
    )


def cached_keys(path: Path) -> set[str]:
    """The cached requests; empty while the synthesizer has not yet created the file or its table."""
    if not path.exists():
        return set()
    with closing(sqlite3.connect(path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "responses" not in tables:
            return set()
        return {row[0] for row in db.execute("SELECT request FROM responses")}


def wait_for(predicate, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_killed_run_resumes_without_resending_answered_requests(tmp_path: Path) -> None:
    server = StubOpenAI(latency=0.2)
    base_url = server.start()
    crashed, clean = tmp_path / "crashed", tmp_path / "clean"
    cache = crashed / "cache" / "responses.sqlite"
    try:
        process = subprocess.Popen(
            [
                "tonetune-synthesize",
                *synth_overrides(base_url, crashed, "teacher.concurrency=2"),
                f"hydra.run.dir={crashed / 'run1'}",
            ],
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: len(cached_keys(cache)) >= 12, process)  # questions done, answers under way
        process.send_signal(signal.SIGKILL)
        process.wait()
        answered = {
            digest(r["messages"], r["seed"], r["temperature"]) for r in map(json.loads, cached_keys(cache))
        }
        sent_before = {e["key"] for e in server.chat_requests(phase=1)}
        assert not (crashed / "data").exists()

        server.phase = 2
        run_synthesize(base_url, crashed, f"hydra.run.dir={crashed / 'run2'}")
        server.phase = 3
        run_synthesize(base_url, clean)
    finally:
        server.stop()
    assert dataset_rows(crashed / "data" / "elon_musk") == dataset_rows(clean / "data" / "elon_musk")
    assert len(answered) >= 12 and answered <= sent_before
    sent_after = {e["key"] for e in server.chat_requests(phase=2)}
    assert not (answered & sent_after), "requests answered before the crash were sent again"
    assert sent_after  # the rest was sent after the restart
    assert len(server.chat_requests(phase=2)) < len(server.chat_requests(phase=3))


def test_batch_mode_resumes_polling_the_same_batch(tmp_path: Path) -> None:
    server = StubOpenAI(batch_polls=40)
    base_url = server.start()
    overrides = synth_overrides(
        base_url, tmp_path, "teacher=openai", "teacher.mode=batch", "teacher.batch_poll_seconds=0.1"
    )
    env = {**os.environ, "OPENAI_API_KEY": "test-key", "HF_HUB_OFFLINE": "1"}
    try:
        process = subprocess.Popen(
            ["tonetune-synthesize", *overrides, f"hydra.run.dir={tmp_path / 'run1'}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: any(e["kind"] == "batch_create" for e in server.log), process)
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert list((tmp_path / "cache").glob("batch-*.json"))
        server.phase = 2
        os.environ["OPENAI_API_KEY"] = "test-key"
        try:
            report, _ = run_synthesize(
                base_url, tmp_path, "teacher=openai", "teacher.mode=batch", "teacher.batch_poll_seconds=0.01"
            )
        finally:
            del os.environ["OPENAI_API_KEY"]
    finally:
        server.stop()
    creations = [e for e in server.log if e["kind"] == "batch_create"]
    assert [e["phase"] for e in creations].count(1) == 1  # killed while polling its first batch
    submitted = [server.batches[e["id"]]["requests"] for e in creations]
    assert len(submitted) == len(set(submitted)) >= 3  # later batches are new work, never a re-submission
    assert any(e["kind"] == "batch_poll" and e["phase"] == 2 and e["id"] == "batch-0" for e in server.log)
    assert report["teacher"]["mode"] == "batch"
    assert report["answers"]["kept"] == 2 * report["questions"]["kept"]
    assert not list((tmp_path / "cache").glob("batch-*.json"))


@pytest.mark.slow
def test_local_teacher_builds_a_dataset_that_train_learns_from(tmp_path: Path, make_train_cfg) -> None:
    cfg = compose_config(
        "synthesize",
        [
            "teacher=local",
            "question_set.questions_per_prompt=4",
            "questions.max_rounds=4",
            "answers.max_attempts=4",
            "logger=none",
            f"data_dir={tmp_path / 'data' / 'elon_musk'}",
            f"paths.response_cache={tmp_path / 'cache.sqlite'}",
            f"paths.output_dir={tmp_path / 'run'}",
        ],
    )
    report, objects = synthesize(cfg)
    decoding = "" if cfg.teacher.dtype == "float32" else f":{cfg.teacher.dtype}"
    assert report["teacher"]["model"] == f"local:smollm2-135m-instruct{decoding}"
    assert report["questions"]["kept"] >= 8
    assert report["answers"]["kept"] >= 4
    assert report["usage"]["completion_tokens"] > 0
    for row in objects["rows"]:  # every kept answer passed the persona's filters
        assert "#" in row["answer"]

    metrics, _ = train(
        make_train_cfg(
            "base_model=smollm2_135m",
            "data=synthesized",
            "data.val_fraction=0.2",
            f"paths.data_root={tmp_path / 'data'}",
            "trainer.max_epochs=1",
        )
    )
    assert metrics["train/global_step"] >= 1
    assert metrics["val/loss"] < metrics["val/loss_before"]
