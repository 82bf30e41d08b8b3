"""Personas that hold a conversation: multi-turn synthesis, every assistant turn trained, the chat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from datasets import load_from_disk

from tests.conftest import compose_config
from tests.openai_stub import StubOpenAI, digest
from tests.test_synthesis import cached_keys, dataset_rows, wait_for
from tonetune.data.chat import tokenize_conversation
from tonetune.models.loss import IGNORE_INDEX
from tonetune.synthesis.conversations import clean_follow_up
from tonetune.synthesis.synthesize import synthesize


def multi_turn_overrides(base_url: str, root: Path, *extra: str) -> list[str]:
    return [
        "teacher=openai_compatible",
        f"teacher.base_url={base_url}",
        "teacher.concurrency=2",
        "question_set.questions_per_prompt=4",
        "conversations.share=1.0",
        "conversations.turns=3",
        "preferences.enabled=false",
        "conversations.max_echo_similarity=0.9",  # the stub's answers share one template: ~0.8 alike
        "logger=none",
        f"data_dir={root / 'data'}",
        f"paths.response_cache={root / 'cache.sqlite'}",
        *extra,
    ]


def synthesize_against(stub: StubOpenAI, tmp_path: Path) -> dict:
    """Multi-turn synthesis with ``stub`` as the teacher; its report."""
    url = stub.start()
    try:
        cfg = compose_config(
            "synthesize", [*multi_turn_overrides(url, tmp_path), f"paths.output_dir={tmp_path / 'run'}"]
        )
        report, _ = synthesize(cfg)
    finally:
        stub.stop()
    return report


def test_three_turn_conversation_trains_every_answer_and_masks_every_user_turn(smollm_tokenizer) -> None:
    chat = [
        {"role": "user", "content": "What do you think about Mondays?"},
        {"role": "assistant", "content": "Mondays are launch days 🚀 #LaunchDay"},
        {"role": "user", "content": "Why?"},
        {"role": "assistant", "content": "Rockets hate weekends 😅 #NoDaysOff"},
        {"role": "user", "content": "Give me an example."},
        {"role": "assistant", "content": "Starship on a Sunday? Never 🛸 #Mondays"},
    ]
    encoded = tokenize_conversation(smollm_tokenizer, chat, max_length=512)
    spans, current = [], []
    for token, label in zip(encoded["input_ids"], encoded["labels"], strict=True):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            spans.append(smollm_tokenizer.decode(current))
            current = []
    if current:
        spans.append(smollm_tokenizer.decode(current))
    answers = [m["content"] for m in chat if m["role"] == "assistant"]
    assert [s.rstrip() for s in spans] == [
        f"{a}<|im_end|>" for a in answers
    ]  # each answer and its end of turn
    trained = "".join(spans)
    for user in (m["content"] for m in chat if m["role"] == "user"):
        assert user not in trained


def test_follow_ups_are_cleaned_or_refused() -> None:
    assert clean_follow_up('User: "Why would you do that?"\nextra line') == "Why would you do that?"
    assert clean_follow_up("   ") is None
    assert clean_follow_up("Conversation:\nPerson: Why?") is None  # a label alone is no message
    assert clean_follow_up("word " * 60) is None


def test_synthesis_extends_conversations_with_follow_ups_that_pass_the_filters(tmp_path) -> None:
    report = synthesize_against(StubOpenAI(), tmp_path)
    counts = report["conversations"]
    assert counts["extended"] == report["answers"]["kept"] == 16 and counts["turns_added"] == 32
    data = load_from_disk(str(tmp_path / "data"))
    for split in data.values():
        for messages in split["messages"]:
            assert [m["role"] for m in messages] == ["user", "assistant"] * 3
            tags = [m["content"].split("#")[-1] for m in messages if m["role"] == "assistant"]
            follow_ups = [m["content"] for m in messages[2::2]]
            assert all(
                f"#{tag}" in follow_up for tag, follow_up in zip(tags, follow_ups, strict=False)
            )  # refers to the answer
            assert all("🚀" in m["content"] for m in messages if m["role"] == "assistant")  # filters passed
    card = (tmp_path / "data" / "README.md").read_text()
    assert "| conversations: extended | 16 |" in card and "| conversations: turns added | 32 |" in card
    openai_rows = [
        json.loads(line) for line in (tmp_path / "data" / "openai_train.jsonl").read_text().splitlines()
    ]
    assert all(len(row["messages"]) == 6 for row in openai_rows)


def echo_previous_answer_once(body: dict) -> str | None:
    """On its first attempt, every follow-up answer repeats the persona's previous answer word for word."""
    messages = body["messages"]
    follow_up_answer = messages[0]["role"] == "system" and len(messages) > 3
    if follow_up_answer and body.get("seed", 0) % 1000 == 0:
        return next(m["content"] for m in reversed(messages) if m["role"] == "assistant")
    return None


def test_follow_up_answers_that_echo_an_earlier_answer_are_asked_again(tmp_path) -> None:
    report = synthesize_against(StubOpenAI(script=echo_previous_answer_once), tmp_path)
    counts = report["conversations"]
    assert (
        counts["answers_echoing"] == 32 and counts["answers_rejected"] == 0
    )  # the echoes pass every other filter
    assert counts["turns_added"] == 32  # each asked again, answered anew
    for split in load_from_disk(str(tmp_path / "data")).values():
        for messages in split["messages"]:
            answers = [m["content"] for m in messages if m["role"] == "assistant"]
            assert len(set(answers)) == len(answers) == 3


def test_a_follow_up_writer_writes_the_users_side_and_the_teacher_the_personas(tmp_path) -> None:
    asked: dict[str, list[bool]] = {"teacher": [], "writer": []}

    def recorder(name: str):
        def record(body: dict) -> None:
            asked[name].append(body["messages"][0]["content"].startswith("You write the next message"))

        return record

    teacher, writer = StubOpenAI(script=recorder("teacher")), StubOpenAI(script=recorder("writer"))
    teacher_url, writer_url = teacher.start(), writer.start()
    try:
        overrides = [
            *multi_turn_overrides(teacher_url, tmp_path),
            "follow_up_writer=openai_compatible",
            f"follow_up_writer.base_url={writer_url}",
            f"paths.output_dir={tmp_path / 'run'}",
        ]
        report, _ = synthesize(compose_config("synthesize", overrides))
    finally:
        teacher.stop()
        writer.stop()
    assert report["conversations"]["turns_added"] == 32
    assert asked["writer"] and all(asked["writer"])  # only follow-ups, all of them
    assert len(asked["writer"]) == report["follow_up_writer"]["usage"]["requests_sent"] == 32
    assert asked["teacher"] and not any(asked["teacher"])  # questions and every persona answer


def test_killed_multi_turn_synthesis_resumes_without_resending(tmp_path) -> None:
    stub = StubOpenAI(latency=0.1)
    url = stub.start()
    crashed, clean = tmp_path / "crashed", tmp_path / "clean"
    try:
        process = subprocess.Popen(
            ["tonetune-synthesize", *multi_turn_overrides(url, crashed), f"hydra.run.dir={crashed / 'run1'}"],
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # questions (8 lists) and first answers (16) are done: the kill lands among the follow-ups
        wait_for(lambda: len(cached_keys(crashed / "cache.sqlite")) >= 30, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        answered = {
            digest(r["messages"], r["seed"], r["temperature"])
            for r in map(json.loads, cached_keys(crashed / "cache.sqlite"))
        }
        stub.phase = 2
        synthesize(
            compose_config(
                "synthesize", [*multi_turn_overrides(url, crashed), f"paths.output_dir={crashed / 'run2'}"]
            )
        )
        stub.phase = 3
        synthesize(
            compose_config(
                "synthesize", [*multi_turn_overrides(url, clean), f"paths.output_dir={clean / 'run'}"]
            )
        )
    finally:
        stub.stop()
    assert dataset_rows(crashed / "data") == dataset_rows(clean / "data")
    resent = answered & {e["key"] for e in stub.chat_requests(phase=2)}
    assert not resent and len(stub.chat_requests(phase=2)) < len(stub.chat_requests(phase=3))
