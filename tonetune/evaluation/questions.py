"""The questions an evaluation asks: a dataset split with reference answers, or any plain list.

A list without answers (a text file, or JSONL with only ``question``) is evaluated on everything
that needs no reference; the report says which metrics were left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tonetune.data.loading import Columns, load_conversations, read_jsonl
from tonetune.data.questions import read_question_file
from tonetune.errors import DataError
from tonetune.evaluation.settings import QuestionSettings


@dataclass
class QuestionSet:
    """Questions, their reference answers when the source has them, and where they came from."""

    name: str
    source: str
    questions: list[str]
    references: list[str] | None = None

    def __len__(self) -> int:
        return len(self.questions)

    def limited(self, limit: int | None) -> QuestionSet:
        """The first ``limit`` questions (all when None)."""
        if not limit:
            return self
        refs = self.references[:limit] if self.references is not None else None
        return QuestionSet(self.name, self.source, self.questions[:limit], refs)


def load_question_set(name: str, source: str, split: str, columns: Columns, option: str) -> QuestionSet:
    """``source``'s questions: a plain list, or the ``split`` of a dataset (with its reference answers)."""
    if _is_plain_list(source):
        questions = [q.text for q in read_question_file(source, option=option)]
        if not questions:
            raise DataError(f"{option}={source}: no questions in it")
        return QuestionSet(name, source, questions)
    data = load_conversations(source, columns)
    if split not in data:
        raise DataError(f"evaluation.questions.split={split!r}: {source} has splits {sorted(data)}")
    rows = data[split]["messages"]
    questions = [next(m["content"] for m in r if m["role"] == "user") for r in rows]
    return QuestionSet(name, source, questions, [r[-1]["content"] for r in rows])


def evaluation_sets(settings: QuestionSettings, run_source: str, columns: Columns) -> list[QuestionSet]:
    """The main question set (``questions.source`` or the run's own data) and the extra lists."""
    source = settings.source or run_source
    main = load_question_set(settings.split, source, settings.split, columns, "evaluation.questions.source")
    extra = [
        load_question_set(name, path, settings.split, columns, f"evaluation.questions.extra.{name}")
        for name, path in settings.extra.items()
        if path
    ]
    return [main.limited(settings.limit), *(s.limited(settings.limit) for s in extra)]


def _is_plain_list(source: str) -> bool:
    """A .txt file, or a .jsonl file whose first row has a ``question`` but no answer or messages."""
    path = Path(source).expanduser()
    if path.suffix == ".txt":
        return True
    if path.suffix != ".jsonl" or not path.is_file():
        return False
    first = next(read_jsonl(path), (None, {}))[1]
    return "question" in first and "answer" not in first and "messages" not in first
