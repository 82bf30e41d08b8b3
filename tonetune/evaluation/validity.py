"""Can a tone reader tell the persona from what it is not? Its rates on answers to held-out questions.

Held out by question (grouped folds): no question has answers both in a fold's training data and
in what that fold reads, so a reader cannot pass by recognising the topic. Every answer in the
pool is read once by a model that never saw its question: the true-positive rate on the persona's
answers, and the false-positive rate on each kind of negative (other personas, plain, base) with a
Wilson 95% interval and its count, whether or not that kind trained the reader. A length-only
baseline (a regression on the answer's word and character counts, trained the same way) says how
much of the reader's accuracy length alone gives.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tonetune import stats
from tonetune.evaluation.classifier import ToneClassifier
from tonetune.evaluation.contrast import Pool

MAX_FPR = 0.10
"""Above this false-positive rate on other personas' answers a reader cannot tell personas apart."""
CANNOT_TELL = "cannot tell personas apart"


@dataclass(frozen=True)
class Rate:
    """A share of answers read as the persona, its Wilson 95% interval, and its counts."""

    value: float
    low: float
    high: float
    hits: int
    n: int

    @classmethod
    def of(cls, flags: np.ndarray) -> Rate:
        """The share of 1s in ``flags``."""
        e = stats.wilson(float(flags.sum()), len(flags))
        low, high = min(e.low, e.value), max(e.high, e.value)  # 1.0 stays inside [.., 0.99999...]
        return cls(e.value, low, high, int(flags.sum()), len(flags))


@dataclass
class Validity:
    """One reader's rates on held-out answers, its baseline, and the verdict."""

    reader: str
    negatives: list[str]
    """The kinds of negative it was trained against."""
    tpr: Rate
    fpr: dict[str, Rate]
    """By kind (``other``, ``plain``, ``base``, ``base_short``) and by other persona (``other:<name>``)."""
    balanced_accuracy: float
    length_baseline_accuracy: float
    """The balanced accuracy of a regression on length alone, trained and held out the same way."""
    folds: int
    max_fpr: float = MAX_FPR
    flags: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes null)."""
        return _no_nan(asdict(self))

    @property
    def status(self) -> str:
        """``flagged``, ``untested`` (no other personas' answers to check) or ``ok``."""
        return "flagged" if self.flags else ("untested" if "other" not in self.fpr else "ok")


def measure_validity(
    reader: str,
    classifier: ToneClassifier,
    features: np.ndarray,
    pool: Pool,
    negatives: list[str],
    folds: int = 5,
    seed: int = 0,
    max_fpr: float = MAX_FPR,
) -> Validity:
    """Grouped out-of-fold rates of ``classifier`` (fresh per fold) on every answer in ``pool``."""
    kinds = np.array(pool.kinds)
    trains = np.isin(kinds, ["persona", *negatives])
    lengths = np.array([[math.log1p(len(t.split())), math.log1p(len(t))] for t in pool.texts])
    length_model = make_pipeline(StandardScaler(), LogisticRegression())
    read = held_out_predictions(classifier.estimator, features, pool, trains, folds, seed)
    by_length = held_out_predictions(lambda: length_model, lengths, pool, trains, folds, seed)
    fpr = {kind: Rate.of(read[kinds == kind]) for kind in KINDS_NEGATIVE if (kinds == kind).any()}
    for speaker in sorted({s for s, k in zip(pool.speakers, kinds, strict=True) if k == "other"}):
        mask = (kinds == "other") & (np.array(pool.speakers) == speaker)
        fpr[f"other:{speaker}"] = Rate.of(read[mask])
    validity = Validity(
        reader,
        list(negatives),
        Rate.of(read[kinds == "persona"]),
        fpr,
        _balanced_accuracy(read, kinds),
        _balanced_accuracy(by_length, kinds),
        folds,
        max_fpr,
    )
    validity.flags = verdict(validity)
    return validity


KINDS_NEGATIVE = ("other", "plain", "base", "base_short")


def held_out_predictions(
    make, features: np.ndarray, pool: Pool, trains: np.ndarray, folds: int, seed: int
) -> np.ndarray:
    """Each answer's prediction by a model trained on the other folds' questions (``trains`` only)."""
    labels = (np.array(pool.kinds) == "persona").astype(int)
    groups = np.array(pool.groups)
    folds = min(folds, len(set(pool.groups)))
    predicted = np.zeros(len(labels))
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(features, labels, groups):
        train = train[trains[train]]
        predicted[test] = make().fit(features[train], labels[train]).predict(features[test])
    return predicted


def verdict(validity: Validity) -> list[str]:
    """What the reader gets wrong, worst first (empty: nothing above the bars)."""
    flags = []
    other = validity.fpr.get("other")
    if other is not None and other.value > validity.max_fpr:
        flags.append(CANNOT_TELL)
    plain = validity.fpr.get("plain")
    if plain is not None and plain.value > validity.max_fpr:
        flags.append("reads plain answers as the persona")
    if validity.tpr.value < 1 - validity.max_fpr:
        flags.append("misses the persona's own answers")
    return flags


def _balanced_accuracy(predicted: np.ndarray, kinds: np.ndarray) -> float:
    """The mean of the true-positive rate and the true-negative rate over all negatives."""
    persona = kinds == "persona"
    return float((predicted[persona].mean() + (1 - predicted[~persona]).mean()) / 2)


def _no_nan(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value
