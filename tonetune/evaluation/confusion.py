"""Who is speaking? An N-way reader over a persona set: the run's persona, the contrast personas, neutral.

A multinomial regression on standardised MiniLM embeddings, trained on the same pool as the tone
readers (every answer in no persona, base or plain, is ``neutral``). Its own confusion matrix on
answers to held-out questions comes with the report; every contestant's answers then get a row:
the share read as each speaker (``speaker/<name>`` per answer, so each share has its interval).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from tonetune.evaluation.contrast import Pool
from tonetune.evaluation.validity import Rate

PREFIX = "speaker/"


@dataclass
class SpeakerReader:
    """Reads each answer as one of ``classes`` (persona names and ``neutral``)."""

    seed: int = 0
    classes: list[str] = field(default_factory=list)

    @staticmethod
    def estimator() -> Pipeline:
        """A fresh multinomial regression (balanced: the neutral class is the largest)."""
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))

    def fit(self, vectors: np.ndarray, speakers: Sequence[str]) -> SpeakerReader:
        """Train on every answer of the pool (``vectors``: their embeddings)."""
        self.model = self.estimator().fit(vectors, np.array(speakers))
        self.classes = [str(c) for c in self.model.classes_]
        return self

    def read(self, vectors: np.ndarray) -> dict[str, np.ndarray]:
        """``speaker/<name>``: 1.0 for each answer read as that speaker, else 0.0."""
        predicted = self.model.predict(vectors) if len(vectors) else np.array([], dtype=str)
        return {f"{PREFIX}{c}": (predicted == c).astype(float) for c in self.classes}


def held_out_confusion(vectors: np.ndarray, pool: Pool, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """The reader's confusion matrix on answers to held-out questions: true speaker -> share read as each."""
    speakers = np.array(pool.speakers)
    predicted = np.empty(len(speakers), dtype=object)
    splitter = GroupKFold(n_splits=min(folds, len(set(pool.groups))), shuffle=True, random_state=seed)
    for train, test in splitter.split(vectors, speakers, np.array(pool.groups)):
        predicted[test] = (
            SpeakerReader.estimator().fit(vectors[train], speakers[train]).predict(vectors[test])
        )
    classes = sorted(set(pool.speakers))
    return {
        "classes": classes,
        "rows": {
            truth: {c: Rate.of((predicted[speakers == truth] == c).astype(float)).__dict__ for c in classes}
            for truth in classes
        },
    }


def contestant_rows(metrics: dict[str, dict[str, float]]) -> tuple[list[str], dict[str, dict[str, float]]]:
    """(speakers, contestant -> speaker -> share) from an evaluation's metrics; empty without the reader."""
    speakers = sorted({k[len(PREFIX) :] for m in metrics.values() for k in m if k.startswith(PREFIX)})
    rows = (
        {
            name: {s: m[f"{PREFIX}{s}"] for s in speakers}
            for name, m in metrics.items()
            if f"{PREFIX}{speakers[0]}" in m
        }
        if speakers
        else {}
    )
    return speakers, rows
