"""Question lists: a text file (one question a line), JSONL with ``question``, or a dataset split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tonetune.data.loading import Columns, load_conversations, read_jsonl, read_text_lines
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


def _is_plain_list(source: str) -> bool:
    """A .txt file, or a .jsonl file whose first row has a ``question`` but no answer or messages."""
    path = Path(source).expanduser()
    if path.suffix == ".txt":
        return True
    if path.suffix != ".jsonl" or not path.is_file():
        return False
    first = next(read_jsonl(path), (None, {}))[1]
    return "question" in first and "answer" not in first and "messages" not in first
