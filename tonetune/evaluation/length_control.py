"""Length-controlled tone: each tone reader's share per answer-length bucket, with counts.

A reader that has learned "short" rather than "the persona" scores by length; its share within
one length bucket shows whether a score holds at every length. Bucket edges are the terciles of
the reference answers' lengths (of all answers when there are no references).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from tonetune import stats
from tonetune.evaluation.results import SetResult
from tonetune.evaluation.settings import REFERENCE
from tonetune.markdown import with_interval

LENGTH = "mean_words"  # its per-answer values are the answers' word counts


def length_buckets(result: SetResult, readers: list[str]) -> dict[str, Any] | None:
    """Edges, bucket labels, and contestant -> reader -> one share (Wilson interval, n) per bucket."""
    scores = {name: s.per_answer for name, s in result.scores.items() if LENGTH in s.per_answer}
    if not scores:
        return None
    basis = [scores[REFERENCE][LENGTH]] if REFERENCE in scores else [s[LENGTH] for s in scores.values()]
    pooled = np.concatenate(basis)
    if not len(pooled):
        return None
    edges = sorted({int(np.floor(q)) for q in np.quantile(pooled, [1 / 3, 2 / 3])})
    rows = {
        name: {
            reader: [_share(values[reader], bucket) for bucket in _buckets(values[LENGTH], edges)]
            for reader in readers
            if reader in values
        }
        for name, values in scores.items()
    }
    return {
        "basis": "reference answers" if REFERENCE in scores else "all answers",
        "labels": _labels(edges),
        "rows": rows,
    }


def length_lines(buckets: dict[str, Any] | None) -> list[str]:
    """The report's table: one row per contestant and reader, one column per length bucket."""
    if not buckets:
        return []
    labels = buckets["labels"]
    lines = [
        f"Tone by answer length (buckets: terciles of the {buckets['basis']}' lengths; share read as "
        "the persona, Wilson 95% interval, hits/n): a score that holds in every bucket is not just length.",
        "",
        "| contestant | reader | " + " | ".join(labels) + " |",
        "| --- | --- |" + " ---: |" * len(labels),
    ]
    for name, readers in buckets["rows"].items():
        for reader, cells in readers.items():
            lines.append(f"| {name} | {reader} | " + " | ".join(_cell(c) for c in cells) + " |")
    return [*lines, ""]


def _buckets(lengths: np.ndarray, edges: list[int]) -> list[np.ndarray]:
    """A mask per bucket: at most the first edge, up to the next, ..., above the last."""
    bounds = [-np.inf, *edges, np.inf]
    return [(lengths > low) & (lengths <= high) for low, high in itertools.pairwise(bounds)]


def _labels(edges: list[int]) -> list[str]:
    bounds = [None, *edges, None]
    labels = []
    for low, high in itertools.pairwise(bounds):
        if low is None:
            labels.append(f"<= {high} words")
        elif high is None:
            labels.append(f"> {low} words")
        else:
            labels.append(f"{low + 1}-{high} words")
    return labels


def _share(values: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    hits, n = float(values[mask].sum()), int(mask.sum())
    return {**stats.wilson(hits, n).as_dict(), "hits": int(hits)}


def _cell(share: dict[str, Any]) -> str:
    if not share["n"]:
        return "-"
    return f"{with_interval(share['value'], [share['low'], share['high']])} ({share['hits']}/{share['n']})"
