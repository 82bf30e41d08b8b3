"""Question lists: a text file (one question a line) or JSONL with ``question`` (and ``category``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tonetune.data.loading import read_jsonl, read_text_lines
from tonetune.errors import DataError


@dataclass(frozen=True)
class Question:
    """A question and its category."""

    text: str
    category: str


def read_question_file(
    path: str | Path, default_category: str = "user", option: str = "questions.files"
) -> list[Question]:
    """Questions from a text file (one per line) or JSONL (``question`` and optional ``category``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{option}: {path}: no such file")
    if path.suffix == ".jsonl":
        questions = []
        for where, row in read_jsonl(path):
            text = row.get("question")
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: field 'question' is missing or empty")
            questions.append(Question(text.strip(), str(row.get("category") or default_category)))
        return questions
    return [Question(line, default_category) for _, line in read_text_lines(path)]
