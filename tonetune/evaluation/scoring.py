"""Scoring one contestant's answers to a question set: every metric per answer, then estimates.

Each metric is kept per answer, so its mean gets a bootstrap interval by question, and the
difference between two contestants is paired by question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tonetune import stats
from tonetune.evaluation import metrics as m
from tonetune.evaluation.classifier import ToneClassifier
from tonetune.evaluation.questions import QuestionSet
from tonetune.models.embeddings import embed
from tonetune.schemas import PersonaConfig

# Metrics whose estimate is a ratio to the reference answers' mean (1 = like the reference).
RATIOS = {"length_ratio": ("words", "words"), "relevance_ratio": ("relevance", "relevance")}
NEEDS_REFERENCE = ["length_ratio", "relevance_ratio", "similarity_to_reference", "rouge_l", "reference_ppl"]


@dataclass
class Scores:
    """Per-answer values and their estimates for one contestant on one question set."""

    per_answer: dict[str, np.ndarray] = field(default_factory=dict)
    estimates: dict[str, stats.Estimate] = field(default_factory=dict)

    def values(self) -> dict[str, float]:
        """Metric -> value."""
        return {name: e.value for name, e in self.estimates.items()}


@dataclass
class Scorer:
    """Scores answers to ``questions`` for ``persona`` with the tone classifiers."""

    persona: PersonaConfig
    questions: QuestionSet
    classifier: ToneClassifier
    masked_classifier: ToneClassifier | None = None

    def __post_init__(self) -> None:
        self.question_vectors = embed(self.questions.questions)
        self.indices = stats.resample_indices(len(self.questions))
        self.reference: Scores | None = None
        if self.questions.references is not None:
            self.reference_vectors = embed(self.questions.references)
            self.reference = self.score(self.questions.references, None)

    def score(self, texts: Sequence[str], finish_reasons: Sequence[str] | None) -> Scores:
        """Every metric of these answers (one per question, in order)."""
        vectors = embed(list(texts))
        values = {"tone_classifier": self.classifier.predict(vectors)}
        if self.masked_classifier is not None:
            values["tone_classifier_masked"] = self.masked_classifier.predict_texts(texts)
        values.update(m.marker_hits(texts, self.persona))
        values["words"] = m.words(texts)
        values["relevance"] = m.pairwise_cosine(vectors, self.question_vectors)
        if self.reference is not None and finish_reasons is not None:
            values["similarity_to_reference"] = m.pairwise_cosine(vectors, self.reference_vectors)
            values["rouge_l"] = m.rouge_l(texts, self.questions.references)
        if finish_reasons is not None:
            values["stopped"] = m.stopped(finish_reasons)
        values["repetition"] = m.repeats_itself(texts)
        values["empty"] = m.empty(texts)
        scores = Scores(values, {name: stats.mean(v, self.indices) for name, v in values.items()})
        scores.estimates["mean_words"] = scores.estimates.pop("words")
        self._add_ratios(scores, finish_reasons is not None)
        scores.estimates["distinct_2"] = self._distinct(texts)
        return scores

    def add_perplexity(self, scores: Scores, nll: np.ndarray, tokens: np.ndarray) -> None:
        """Reference-answer perplexity from per-answer NLL sums and token counts (with its interval)."""
        ratio = stats.ratio_of_means(nll, tokens, self.indices)
        scores.estimates["reference_ppl"] = stats.Estimate(
            float(np.exp(ratio.value)), float(np.exp(ratio.low)), float(np.exp(ratio.high)), ratio.n
        )

    def _add_ratios(self, scores: Scores, is_contestant: bool) -> None:
        if self.reference is None or not is_contestant:
            return
        for name, (mine, theirs) in RATIOS.items():
            scores.estimates[name] = stats.ratio_of_means(
                scores.per_answer[mine], self.reference.per_answer[theirs], self.indices
            )

    def _distinct(self, texts: Sequence[str]) -> stats.Estimate:
        texts = list(texts)
        return stats.bootstrap(
            lambda idx: m.distinct_n([texts[i] for i in idx], 2), len(texts), self.indices[:500]
        )


def differences(candidate: Scores, opponent: Scores, indices: np.ndarray) -> dict[str, stats.Estimate]:
    """Candidate minus opponent, paired by question, for every per-answer metric both have."""
    shared = [k for k in candidate.per_answer if k in opponent.per_answer and k != "words"]
    return {
        k: stats.paired_difference(candidate.per_answer[k], opponent.per_answer[k], indices) for k in shared
    }
