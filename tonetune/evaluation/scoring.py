"""Scoring one contestant's answers to a question set: every metric per answer, then estimates.

Each metric is kept per answer, so its mean gets a bootstrap interval by question, and the
difference between two contestants is paired by question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tonetune import stats
from tonetune.data.question_lists import QuestionSet
from tonetune.evaluation import metrics as m
from tonetune.evaluation.classifier import ToneClassifier
from tonetune.evaluation.confusion import SpeakerReader
from tonetune.evaluation.registry import Answers, Kind, computed, is_paired
from tonetune.models.embeddings import embed
from tonetune.schemas import PersonaConfig


@dataclass
class Scores:
    """Per-answer values and their estimates for one contestant on one question set."""

    per_answer: dict[str, np.ndarray] = field(default_factory=dict)
    estimates: dict[str, stats.Estimate] = field(default_factory=dict)

    def values(self) -> dict[str, float]:
        """Metric -> value."""
        return {name: e.value for name, e in self.estimates.items()}


@dataclass
class ToneReader:
    """The tone of answers, per answer: the tone readers, who is speaking, and the persona's markers."""

    persona: PersonaConfig
    classifier: ToneClassifier
    masked_classifier: ToneClassifier | None = None
    stylometric: ToneClassifier | None = None
    """The topic-blind reader (``tonetune.evaluation.stylometry``)."""
    speakers: SpeakerReader | None = None
    """The N-way reader over the persona set (``tonetune.evaluation.confusion``)."""

    def read(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Every reader's verdict on each answer, who speaks it, and the marker hits.

        ``readers_agree``: the stylometric reader says what ``tone_classifier`` says.
        """
        vectors = embed(list(texts)) if vectors is None else vectors
        values = {"tone_classifier": self.classifier.predict(vectors)}
        if self.masked_classifier is not None:
            values["tone_classifier_masked"] = self.masked_classifier.predict_texts(texts)
        if self.stylometric is not None:
            values["tone_stylometric"] = self.stylometric.predict_texts(texts)
            values["readers_agree"] = (values["tone_stylometric"] == values["tone_classifier"]).astype(float)
        if self.speakers is not None:
            values.update(self.speakers.read(vectors))
        values.update(m.marker_hits(texts, self.persona))
        return values


@dataclass
class Scorer:
    """Scores answers to ``questions`` with the tone reader and the question set's references."""

    questions: QuestionSet
    tone: ToneReader

    def __post_init__(self) -> None:
        self.question_vectors = embed(self.questions.questions)
        self.indices = stats.resample_indices(len(self.questions))
        self.reference: Scores | None = None
        self.reference_vectors: np.ndarray | None = None
        if self.questions.references is not None:
            self.reference_vectors = embed(self.questions.references)
            self.reference = self.score(self.questions.references, None)

    def score(self, texts: Sequence[str], finish_reasons: Sequence[str] | None) -> Scores:
        """Every registered metric of these answers (one per question, in order).

        ``finish_reasons`` is None for the reference answers themselves.
        """
        vectors = embed(list(texts))
        values = self.tone.read(texts, vectors)
        answers = Answers(
            texts,
            vectors,
            finish_reasons,
            self.question_vectors,
            self.questions.references,
            self.reference_vectors,
            values,
            None if self.reference is None else self.reference.per_answer,
            self.indices,
        )
        for metric in computed(Kind.ANSWER):
            if metric.applies(answers):
                values[metric.name] = metric.compute(answers)
        scores = Scores(values, {name: stats.mean(v, self.indices) for name, v in values.items()})
        for metric in computed(Kind.SET):
            if metric.applies(answers):
                scores.estimates[metric.name] = metric.compute(answers)
        return scores

    def add_perplexity(self, scores: Scores, nll: np.ndarray, tokens: np.ndarray) -> None:
        """Reference-answer perplexity from per-answer NLL sums and token counts (with its interval)."""
        ratio = stats.ratio_of_means(nll, tokens, self.indices)
        scores.estimates["reference_ppl"] = stats.Estimate(
            float(np.exp(ratio.value)), float(np.exp(ratio.low)), float(np.exp(ratio.high)), ratio.n
        )


PerItem = dict[str, dict[str, np.ndarray]]
"""Contestant -> metric -> one value per item (question, probe or conversation)."""


def compare(per_item: PerItem, candidate: str, indices: np.ndarray) -> dict[str, dict[str, dict[str, Any]]]:
    """Candidate minus every other contestant, per metric both have, paired by item; JSON-ready."""
    if candidate not in per_item:
        return {}
    mine = per_item[candidate]
    result = {}
    for name, theirs in per_item.items():
        if name == candidate:
            continue
        result[name] = {}
        for metric in sorted(k for k in theirs.keys() & mine.keys() if is_paired(k)):
            difference = stats.paired_difference(mine[metric], theirs[metric], indices)
            result[name][metric] = {**difference.as_dict(), "significant": difference.significant}
    return result


def summarise(per_item: PerItem, indices: np.ndarray) -> tuple[dict, dict]:
    """(metrics, intervals): each contestant's mean per metric and its 95% interval."""
    estimates = {
        name: {k: stats.mean(v, indices) for k, v in values.items()} for name, values in per_item.items()
    }
    metrics = {name: {k: e.value for k, e in scores.items()} for name, scores in estimates.items()}
    intervals = {name: {k: [e.low, e.high] for k, e in scores.items()} for name, scores in estimates.items()}
    return metrics, intervals
