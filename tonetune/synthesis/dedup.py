"""Remove duplicate questions: normalised exact matches, then near-duplicates by embedding cosine."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tonetune.data.question_lists import Question
from tonetune.models.embeddings import embed

_NOT_WORD = re.compile(r"[^\w\s]")


def normalise(text: str) -> str:
    """Lowercase, no punctuation, single spaces."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


@dataclass
class DedupReport:
    """How many questions each stage removed."""

    exact: int = 0
    near: int = 0


def deduplicate(
    candidates: list[Question], kept: list[Question], threshold: float, report: DedupReport
) -> list[Question]:
    """The candidates that duplicate neither ``kept`` nor each other (earlier ones win)."""
    seen = {normalise(q.text) for q in kept}
    unique = []
    for question in candidates:
        key = normalise(question.text)
        if key in seen or not key:
            report.exact += 1
            continue
        seen.add(key)
        unique.append(question)
    if threshold >= 1.0 or not unique:
        return unique
    vectors = embed([q.text for q in kept + unique])
    accepted = list(range(len(kept)))
    result = []
    for offset, question in enumerate(unique):
        index = len(kept) + offset
        if accepted and float(np.max(vectors[accepted] @ vectors[index])) >= threshold:
            report.near += 1
            continue
        accepted.append(index)
        result.append(question)
    return result
