"""Per-answer metrics of a list of answers: tone markers, length, relevance, similarity, health.

Each function returns one value per answer (so shares and means get bootstrap intervals by
question); ``distinct_n`` is the one corpus-level metric.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
from rouge_score import rouge_scorer

from tonetune.persona import compiled_markers, required_markers, within_length, word_count
from tonetune.schemas import PersonaConfig

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def marker_hits(answers: Sequence[str], persona: PersonaConfig) -> dict[str, np.ndarray]:
    """Whether each answer shows each persona marker, all *required* ones, and a length within range.

    ``marker/all`` asks for the markers the card requires (``required: true``), the ones synthesis
    insists on; an optional marker (the bard's exclamations) is only reported on its own line.
    """
    markers = compiled_markers(persona)
    found = {f"marker/{name}": _flags(bool(rx.search(a)) for a in answers) for name, rx in markers.items()}
    required = [found[f"marker/{name}"] for name in required_markers(persona)]
    if required:
        found["marker/all"] = np.all(np.stack(required), axis=0).astype(float)
    found["length_in_range"] = _flags(within_length(a, persona) for a in answers)
    return found


def words(answers: Sequence[str]) -> np.ndarray:
    """Answer lengths in words."""
    return np.array([word_count(a) for a in answers], dtype=float)


def pairwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two matrices of unit vectors."""
    return np.sum(a * b, axis=1)


def rouge_l(answers: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L F1 of each answer against its reference (as RoleBench reports it)."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array(
        [scorer.score(ref, ans)["rougeL"].fmeasure for ans, ref in zip(answers, references, strict=True)],
        dtype=float,
    )


def distinct_n(answers: Sequence[str], n: int = 2) -> float:
    """Unique n-grams over all n-grams across the answers (low: the model repeats itself)."""
    grams = [g for a in answers for g in _ngrams(_tokens(a), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeats_itself(answers: Sequence[str], n: int = 3) -> np.ndarray:
    """Whether each answer repeats some n-gram of its own (a looping model)."""
    return _flags(any(c > 1 for c in Counter(_ngrams(_tokens(a), n)).values()) for a in answers)


def stopped(finish_reasons: Sequence[str]) -> np.ndarray:
    """Whether each answer ended its turn before the token limit."""
    return _flags(r == "stop" for r in finish_reasons)


def empty(answers: Sequence[str]) -> np.ndarray:
    """Whether each answer is empty."""
    return _flags(not a.strip() for a in answers)


def same_as_previous(answers: Sequence[str], previous: Sequence[str]) -> np.ndarray:
    """Whether each answer repeats the previous answer of its conversation (normalised text)."""
    return _flags(
        _normalised(a) == _normalised(p) and bool(a.strip()) for a, p in zip(answers, previous, strict=True)
    )


def _normalised(text: str) -> str:
    """Lower-case words only: punctuation and spacing do not make an answer new."""
    return " ".join(re.findall(r"\w+", text.lower()))


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _flags(values) -> np.ndarray:
    return np.array(list(values), dtype=float)
