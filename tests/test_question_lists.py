"""The question lists tonetune ships: big enough, with no question in both the bank and the held-out list."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ELON_GPT4, compose_config
from tonetune.config import CONFIG_DIR, typed
from tonetune.data.loading import read_jsonl
from tonetune.data.question_lists import read_question_file
from tonetune.models.embeddings import embed
from tonetune.schemas import QuestionSetConfig

SETS = sorted(p.stem for p in (CONFIG_DIR / "question_set").glob("*.yaml"))


def normalised(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


@pytest.mark.parametrize("name", SETS)
def test_bank_and_held_out_list_are_large_and_disjoint(name: str, tmp_path: Path) -> None:
    cfg = compose_config("synthesize", [f"question_set={name}", f"paths.output_dir={tmp_path}"])
    qs = typed(QuestionSetConfig, cfg.question_set)
    bank, held_out = read_question_file(qs.bank), read_question_file(qs.held_out)
    assert len(bank) >= 200 and len(held_out) >= 40
    categories = {p.category for p in qs.prompts}
    assert set(Counter(q.category for q in bank)) == set(Counter(q.category for q in held_out)) == categories
    assert len({normalised(q.text) for q in bank}) == len(bank)
    assert not {normalised(q.text) for q in bank} & {normalised(q.text) for q in held_out}
    similarity = embed([q.text for q in held_out]) @ embed([q.text for q in bank]).T
    assert similarity.max() < 0.85  # no paraphrase of a bank question in the held-out list either


def test_no_shipped_question_comes_from_the_gpt4_teacher_data(tmp_path: Path) -> None:
    teacher = {normalised(row["question"]) for _, row in read_jsonl(ELON_GPT4)}
    for name in SETS:
        qs = typed(
            QuestionSetConfig,
            compose_config(
                "synthesize", [f"question_set={name}", f"paths.output_dir={tmp_path}"]
            ).question_set,
        )
        shipped = {normalised(q.text) for path in (qs.bank, qs.held_out) for q in read_question_file(path)}
        assert not shipped & teacher
