"""The contrast split (issue 18): other personas and plain answers to the dataset's questions.

Written by ``tonetune-synthesize`` against a scripted OpenAI-compatible teacher on 127.0.0.1,
counted in the card, resumed from the response cache, and read by the evaluation's reader.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

import pytest
from datasets import load_from_disk

from tests.conftest import compose_config
from tests.openai_stub import StubOpenAI
from tests.test_synthesis import run_synthesize
from tonetune.config import command_config
from tonetune.errors import ConfigError
from tonetune.evaluation.contrast import Pool, add_contrast, contrast_answers
from tonetune.llm.local import LocalClient
from tonetune.schemas.synthesize import SynthesizeConfig
from tonetune.synthesis.contrast import PLAIN_SYSTEM, load_persona
from tonetune.synthesis.settings import SynthesisSettings
from tonetune.synthesis.synthesize import _contrast_cards

QUESTIONS = [
    "What is your dream car?",
    "Why do you love Mars so much?",
    "How do rockets land?",
    "What do you eat for breakfast?",
    "Would you ride a rocket to work?",
    "Is a shy answer ever the right one?",
    "What book changed your mind?",
    "How do you spend a rainy Sunday?",
]
BARD = load_persona("shakespeare_bard").system_prompt.strip()
STOIC = load_persona("stoic_mentor").system_prompt.strip()
PLAIN_START = PLAIN_SYSTEM.split("{n}")[0]


def speaker(body: dict[str, Any]) -> str:
    """Who a request asks to speak: a persona card's name, ``plain``, or ``other`` (persona, lists)."""
    system = body["messages"][0]["content"]
    for name, start in (("shakespeare_bard", BARD), ("stoic_mentor", STOIC), ("plain", PLAIN_START)):
        if system.startswith(start):
            return name
    return "other"


def contrast_script(body: dict[str, Any]) -> str | None:
    """The bard in Early Modern English, the stoic calm and 20+ words (too short on a 'shy' question's
    first attempt), the plain assistant in the asked word count (with a hashtag on a 'rocket' question's
    first attempt); everything else: the stub's defaults."""
    question, seed, who = body["messages"][-1]["content"], body.get("seed", 0), speaker(body)
    topic = question.rstrip("?").lower()
    if who == "shakespeare_bard":
        return (
            f"Forsooth, good friend, thou askest {topic}; the stars doth answer thee in time (take {seed})."
        )
    if who == "stoic_mentor":
        if "shy" in question and seed == 0:
            return "Be calm."
        return (
            f"You ask {topic}. Attend to what is in your control, and let the rest pass like weather "
            f"over the hills; the present moment is enough (take {seed})."
        )
    if who == "plain":
        words = int(re.search(r"about (\d+) words", body["messages"][0]["content"]).group(1))
        tag = "#Mars " if "rocket" in question and seed == 0 else ""
        return " ".join(f"{tag}Plainly put, {topic} depends on the situation at hand".split()[:words])
    return None


@pytest.fixture
def recorded():
    """The stub with the contrast script; every chat request's speaker and phase recorded."""
    seen: list[tuple[int, str]] = []
    server = StubOpenAI()

    def script(body: dict[str, Any]) -> str | None:
        seen.append((server.phase, speaker(body)))
        return contrast_script(body)

    server.script = script
    server.base_url = server.start()
    server.seen = seen
    yield server
    server.stop()


def contrast_run(server: StubOpenAI, root: Path, *extra: str) -> tuple[dict, dict]:
    questions = root / "questions.txt"
    questions.write_text("\n".join(QUESTIONS) + "\n")
    return run_synthesize(
        server.base_url,
        root,
        "questions.source=files",
        f"questions.files=[{questions}]",
        "answers.per_question=1",
        "preferences.enabled=false",
        "split.validation=0.25",
        "split.test=0.25",
        *extra,
    )


def read_rows(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        p.name: [json.loads(line) for line in p.read_text().splitlines()]
        for p in sorted(data_dir.glob("contrast_*.jsonl"))
    }


def test_contrast_split_is_written_with_every_speaker_and_counted(recorded, tmp_path: Path) -> None:
    report, objects = contrast_run(recorded, tmp_path)
    data_dir = tmp_path / "data" / "elon_musk"
    files = read_rows(data_dir)
    data = load_from_disk(str(data_dir))
    assert set(files) == {f"contrast_{split}.jsonl" for split in data}
    speakers = {"shakespeare_bard", "stoic_mentor", "plain"}  # elon_musk, the run's own, skipped
    for split, d in data.items():
        rows = files[f"contrast_{split}.jsonl"]
        assert all(set(r) == {"question", "answer", "persona", "category", "split"} for r in rows)
        assert {r["split"] for r in rows} == {split}
        assert sorted((r["question"], r["persona"]) for r in rows) == sorted(
            (q, s) for q in set(d["question"]) for s in speakers
        )
    words = round(statistics.median(len(r["answer"].split()) for r in objects["rows"]))
    contrast = report["contrast"]
    assert (contrast["plain_words"], contrast["plain_words_from"]) == (words, "median of kept answers")
    everything = [r for rows in files.values() for r in rows]
    plain = [r["answer"] for r in everything if r["persona"] == "plain"]
    assert all(words / 2 <= len(a.split()) <= 1.5 * words and "#" not in a for a in plain)
    assert all("thou" in r["answer"] for r in everything if r["persona"] == "shakespeare_bard")
    assert contrast["rows"] == {
        name: len(QUESTIONS) for name in ("shakespeare_bard", "stoic_mentor", "plain")
    }
    assert contrast["rejected"] == {
        "shakespeare_bard": {},
        "stoic_mentor": {"length": 1},  # the 'shy' question's first attempt
        "plain": {"persona_marker": 2},  # the two 'rocket' questions' first attempts
    }
    card = (data_dir / "README.md").read_text()
    assert "## Contrast split" in card and "| stoic_mentor | 8 | length: 1 |" in card
    assert "| plain | 8 | persona_marker: 2 |" in card
    manifest = json.loads((data_dir / ".tonetune-dataset.json").read_text())
    assert set(files) <= set(manifest["entries"])


def test_contrast_split_resumes_from_the_cache_and_is_replaced_by_overwrite(recorded, tmp_path: Path) -> None:
    contrast_run(recorded, tmp_path, "contrast.personas=[shakespeare_bard]")
    assert {s for p, s in recorded.seen if p == 1} == {"other", "shakespeare_bard", "plain"}
    recorded.phase = 2  # one more persona: only its answers are asked for
    contrast_run(recorded, tmp_path, "contrast.personas=[shakespeare_bard,stoic_mentor]", "overwrite=true")
    assert [s for p, s in recorded.seen if p == 2] == ["stoic_mentor"] * (len(QUESTIONS) + 1)
    recorded.phase = 3  # the same run again: nothing is sent
    report, _ = contrast_run(
        recorded, tmp_path, "contrast.personas=[shakespeare_bard,stoic_mentor]", "overwrite=true"
    )
    assert [s for p, s in recorded.seen if p == 3] == [] and report["usage"]["requests_sent"] == 0
    data_dir = tmp_path / "data" / "elon_musk"
    assert {r["persona"] for rows in read_rows(data_dir).values() for r in rows} == {
        "shakespeare_bard",
        "stoic_mentor",
        "plain",
    }
    (data_dir / "my_notes.txt").write_text("mine")
    contrast_run(recorded, tmp_path, "contrast.enabled=false", "overwrite=true")
    assert read_rows(data_dir) == {} and (data_dir / "my_notes.txt").read_text() == "mine"


def test_the_evaluations_reader_reads_the_written_split(recorded, tmp_path: Path) -> None:
    contrast_run(recorded, tmp_path)
    data_dir = tmp_path / "data" / "elon_musk"
    train = read_rows(data_dir)["contrast_train.jsonl"]
    answers = contrast_answers({}, str(data_dir), "train", exclude="elon_musk")
    assert sorted((a.question, a.answer, a.persona) for a in answers) == sorted(
        (r["question"], r["answer"], r["persona"]) for r in train
    )
    pool = Pool()
    add_contrast(pool, answers)
    n = len(train) // 3
    assert pool.counts() == {
        "other": 2 * n,
        "other:shakespeare_bard": n,
        "other:stoic_mentor": n,
        "plain": n,
    }


def test_off_by_default_for_the_local_teacher_and_unknown_cards_refused(tmp_path: Path) -> None:
    cfg = compose_config("synthesize", ["teacher=local", "logger=none", f"paths.output_dir={tmp_path}"])
    settings = SynthesisSettings.from_cfg(command_config(SynthesizeConfig, cfg))
    local = LocalClient(cfg.teacher.base_model)  # nothing is loaded until used
    assert _contrast_cards(settings, local) is None
    settings.contrast.enabled = True
    assert [c.name for c in _contrast_cards(settings, local)] == ["shakespeare_bard", "stoic_mentor"]
    settings.contrast.personas = ["no_such_persona"]
    with pytest.raises(ConfigError, match="no persona card 'no_such_persona'"):
        _contrast_cards(settings, local)
