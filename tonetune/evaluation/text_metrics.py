"""Offline metrics of a list of answers: tone markers, length, relevance, similarity, health."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from rouge_score import rouge_scorer

from tonetune.persona import compiled_markers, word_count

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def marker_shares(answers: Sequence[str], persona: Any) -> dict[str, float]:
    """Share of answers showing each persona marker, all of them, and a length within range."""
    markers = compiled_markers(persona)
    found = {name: [bool(rx.search(a)) for a in answers] for name, rx in markers.items()}
    shares = {f"marker/{name}": _mean(hits) for name, hits in found.items()}
    if markers:
        shares["marker/all"] = _mean([all(hits) for hits in zip(*found.values(), strict=True)])
    low, high = persona["min_words"], persona["max_words"]
    shares["length_in_range"] = _mean([low <= word_count(a) <= high for a in answers])
    return shares


def mean_words(answers: Sequence[str]) -> float:
    """Average answer length in words."""
    return _mean([word_count(a) for a in answers])


def pairwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two matrices of unit vectors."""
    return np.sum(a * b, axis=1)


def rouge_l(answers: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 of answers against their references (as RoleBench reports it)."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return _mean(
        [scorer.score(ref, ans)["rougeL"].fmeasure for ans, ref in zip(answers, references, strict=True)]
    )


def distinct_n(answers: Sequence[str], n: int = 2) -> float:
    """Unique n-grams over all n-grams across the answers (low: the model repeats itself)."""
    grams = [g for a in answers for g in _ngrams(_tokens(a), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_share(answers: Sequence[str], n: int = 3) -> float:
    """Share of answers that repeat some n-gram of their own (a looping model)."""
    return _mean([any(c > 1 for c in Counter(_ngrams(_tokens(a), n)).values()) for a in answers])


def stopped_share(finish_reasons: Sequence[str]) -> float:
    """Share of answers that ended their turn before the token limit."""
    return _mean([r == "stop" for r in finish_reasons])


def empty_share(answers: Sequence[str]) -> float:
    """Share of empty answers."""
    return _mean([not a.strip() for a in answers])


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _mean(values: Sequence[float | bool]) -> float:
    return float(np.mean(values)) if len(values) else 0.0
