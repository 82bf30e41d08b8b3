"""Contrast answers for the tone readers: what is *not* the persona, to the same questions.

A reader trained only against the base model's own answers learns "not the base model"
(shorter, no assistant preamble), not the persona. Its negatives are therefore drawn from:

- ``base``: the base model's own answers (as before);
- ``other``: other personas' answers to the same questions (e.g. the shared sets);
- ``plain``: neutral answers at the persona's length, written by a teacher (persona ``plain``);
- ``base_short``: the base's own answers cut at a sentence end to the persona's median length,
  a length control derived here (it is the base's voice, so it is reported apart from ``plain``).

Files are JSONL with ``question`` and ``answer`` (and optionally ``split`` and ``persona``): the
shared sets, or the contrast split ``contrast_<split>.jsonl`` that ``tonetune-synthesize`` writes
beside a dataset, whose rows carry ``persona`` (a persona name, or ``plain``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tonetune.data.loading import read_jsonl
from tonetune.errors import DataError

PLAIN = "plain"
NEUTRAL = "neutral"
"""The N-way reader's class for answers in no persona (base, plain, base_short)."""
KINDS = ("persona", "other", PLAIN, "base", "base_short")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Pool:
    """Labelled answers a reader learns from and is checked on, one entry per answer."""

    texts: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    """One of ``KINDS``."""
    speakers: list[str] = field(default_factory=list)
    """Who speaks: a persona name, or ``neutral``."""
    groups: list[str] = field(default_factory=list)
    """The question (normalised): held-out splits keep all answers to a question together."""

    def add(self, texts: list[str], questions: list[str], kind: str, speaker: str) -> None:
        """Add answers of one kind and speaker, each to its question."""
        if len(texts) != len(questions):
            raise ValueError(f"{len(texts)} {kind} answers to {len(questions)} questions")
        self.texts += texts
        self.kinds += [kind] * len(texts)
        self.speakers += [speaker] * len(texts)
        self.groups += [question_key(q) for q in questions]

    def counts(self) -> dict[str, int]:
        """Answers per kind (and per other persona as ``other:<name>``)."""
        found: dict[str, int] = {}
        for kind, speaker in zip(self.kinds, self.speakers, strict=True):
            found[kind] = found.get(kind, 0) + 1
            if kind == "other":
                found[f"other:{speaker}"] = found.get(f"other:{speaker}", 0) + 1
        return found


@dataclass(frozen=True)
class ContrastAnswer:
    """One answer by someone other than the persona: another persona, or ``plain``."""

    question: str
    answer: str
    persona: str


def question_key(question: str) -> str:
    """Lower-case words only: the same question however it is spaced or punctuated."""
    return " ".join(re.findall(r"\w+", question.lower()))


def read_contrast_file(path: Path, persona: str | None = None, split: str = "train") -> list[ContrastAnswer]:
    """Answers of ``split`` (rows without a ``split`` count as that split) from a JSONL file.

    Each row's ``persona`` names its speaker; ``persona`` here stands in for rows without one.
    """
    if not path.is_file():
        raise DataError(f"evaluation.contrast: {path}: no such file")
    found = []
    for where, row in read_jsonl(path):
        if row.get("split", split) != split:
            continue
        speaker = row.get("persona") or persona
        missing = [f for f in ("question", "answer") if not isinstance(row.get(f), str) or not row[f].strip()]
        if missing or not speaker:
            raise DataError(f"{where}: needs {', '.join(missing or ['persona'])} (a contrast answer)")
        found.append(ContrastAnswer(row["question"], row["answer"], str(speaker)))
    return found


def contrast_answers(
    files: dict[str, str], dataset: str | None, split: str, exclude: str
) -> list[ContrastAnswer]:
    """Every configured contrast answer, the persona's own (``exclude``) left out.

    ``files`` maps a persona name (or ``plain``) to a file; ``dataset``: a dataset folder whose
    ``contrast_<split>.jsonl`` is read when present.
    """
    found = [a for name, path in files.items() for a in read_contrast_file(Path(path), name, split)]
    if dataset is not None and (Path(dataset) / f"contrast_{split}.jsonl").is_file():
        found += read_contrast_file(Path(dataset) / f"contrast_{split}.jsonl", None, split)
    return [a for a in found if a.persona != exclude]


def add_contrast(pool: Pool, answers: list[ContrastAnswer]) -> None:
    """Add contrast answers to ``pool``: ``plain`` ones as plain, the rest as other personas."""
    for answer in answers:
        plain = answer.persona == PLAIN
        kind, speaker = (PLAIN, NEUTRAL) if plain else ("other", answer.persona)
        pool.add([answer.answer], [answer.question], kind, speaker)


def cut_to_length(text: str, words: int) -> str:
    """``text``'s first sentences up to ``words`` words (the first sentence cut there if longer)."""
    kept: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        if kept and len(" ".join([*kept, sentence]).split()) > words:
            break
        kept.append(sentence)
    return " ".join(" ".join(kept).split()[:words])
