"""The metric registry: every metric the evaluation reports, what it needs, and where it is shown.

One line per metric. The scorer computes the metrics that carry a function (in table order); the
report, plots, pressure and multi-turn sections read their lists from here. A new per-answer
metric is one function of an ``Answers`` batch plus one ``Metric`` line (or ``register``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from tonetune import stats
from tonetune.evaluation import metrics as m


class Kind(Enum):
    """How a metric's value is made from answers."""

    ANSWER = "per answer"  # one value per answer; the estimate is their mean, paired by question
    SET = "per set"  # one value for the whole set (a ratio of means, jackknife, perplexity, judge)


class Better(Enum):
    """Which way a metric is better."""

    HIGHER = "higher"
    LOWER = "lower"
    ONE = "1 = reference"  # a ratio to the reference answers' own value


@dataclass(frozen=True)
class Answers:
    """What a metric function reads: one contestant's answers to a question set, and that set."""

    texts: Sequence[str]
    vectors: np.ndarray
    finish_reasons: Sequence[str] | None
    """None for the reference answers themselves (they are not a contestant's)."""
    question_vectors: np.ndarray
    references: Sequence[str] | None = None
    reference_vectors: np.ndarray | None = None
    values: dict[str, np.ndarray] | None = None
    """The per-answer values computed so far (per-set metrics read them)."""
    reference_values: dict[str, np.ndarray] | None = None
    indices: np.ndarray | None = None
    """The bootstrap draws by question, shared by every metric."""


@dataclass(frozen=True)
class Metric:
    """One metric: its name (a trailing ``/`` names a family, e.g. ``marker/``) and where it goes."""

    name: str
    description: str
    kind: Kind = Kind.ANSWER
    needs_reference: bool = False
    contestant_only: bool = False
    """Not computed on the reference answers themselves (it compares with them, or needs finish reasons)."""
    headline: bool = False
    plotted: bool = False
    card: bool = False
    pressure: bool = False
    multi_turn: bool = False
    """Read on every turn of a conversation (the turn summaries are ``turn_metric_names``)."""
    by_length: bool = False
    """A tone reader's share, also shown per answer-length bucket beside the headline."""
    better: Better = Better.HIGHER
    paired: bool = True
    """Gets a candidate-minus-other difference."""
    compute: Callable[[Answers], np.ndarray | stats.Estimate] | None = None
    """Per answer: one value per answer; per set: an estimate. None: computed elsewhere (a tone reader)."""

    def applies(self, answers: Answers) -> bool:
        """Whether this metric is computed on these answers."""
        return (not self.needs_reference or answers.references is not None) and (
            not self.contestant_only or answers.finish_reasons is not None
        )


def _relevance(a: Answers) -> np.ndarray:
    return m.pairwise_cosine(a.vectors, a.question_vectors)


def _similarity(a: Answers) -> np.ndarray:
    return m.pairwise_cosine(a.vectors, a.reference_vectors)


def _rouge_l(a: Answers) -> np.ndarray:
    return m.rouge_l(a.texts, a.references)


def _stopped(a: Answers) -> np.ndarray:
    return m.stopped(a.finish_reasons)


def _repetition(a: Answers) -> np.ndarray:
    return m.repeats_itself(a.texts)


def _empty(a: Answers) -> np.ndarray:
    return m.empty(a.texts)


def _words(a: Answers) -> np.ndarray:
    return m.words(a.texts)


def _ratio(name: str) -> Callable[[Answers], stats.Estimate]:
    def ratio(a: Answers) -> stats.Estimate:
        return stats.ratio_of_means(a.values[name], a.reference_values[name], a.indices)

    return ratio


def _distinct_2(a: Answers) -> stats.Estimate:
    texts = list(a.texts)
    return stats.jackknife(lambda idx: m.distinct_n([texts[i] for i in idx], 2), len(texts))


S, LOWER, ONE = Kind.SET, Better.LOWER, Better.ONE
SHOWN = {"headline": True, "plotted": True, "card": True}
TONE = {**SHOWN, "pressure": True}
READER = {"by_length": True}
VS_REFERENCE = {"needs_reference": True, "contestant_only": True}
# Table order is computation order, so metrics.json lists them in this order too.
METRICS: list[Metric] = [
    Metric("tone_classifier", "tone reader: share read as the persona", **TONE, **READER,
           multi_turn=True),
    Metric("tone_classifier_masked", "the same with the markers removed", **TONE, **READER, multi_turn=True),
    Metric("tone_stylometric", "topic-blind stylometric reader: share read as the persona", **READER),
    Metric("readers_agree", "the stylometric reader says what tone_classifier says"),
    Metric("speaker/", "N-way reader: share read as each speaker"),
    Metric("marker/all", "shows every required marker of the persona card", **TONE),
    Metric("marker/", "shows one marker of the persona card"),
    Metric("length_in_range", "answer length within the persona's range", plotted=True),
    Metric("relevance", "cosine of answer and question embeddings", compute=_relevance),
    Metric("similarity_to_reference", "cosine to the reference answer", **VS_REFERENCE, plotted=True,
           compute=_similarity),
    Metric("rouge_l", "ROUGE-L F1 against the reference answer", **VS_REFERENCE, plotted=True,
           compute=_rouge_l),
    Metric("stopped", "ended its turn before the token limit", contestant_only=True, **SHOWN,
           compute=_stopped),
    Metric("repetition", "repeats a 3-gram of its own", plotted=True, better=LOWER, compute=_repetition),
    Metric("empty", "empty answer", better=LOWER, compute=_empty),
    Metric("mean_words", "answer length in words", paired=False, compute=_words),
    Metric("length_ratio", "mean length over the reference answers'", S, **VS_REFERENCE, **SHOWN,
           better=ONE, compute=_ratio("mean_words")),
    Metric("relevance_ratio", "mean relevance over the reference answers'", S, **VS_REFERENCE, **SHOWN,
           better=ONE, compute=_ratio("relevance")),
    Metric("distinct_2", "unique bigrams over all bigrams of the set", S, plotted=True, compute=_distinct_2),
    Metric("reference_ppl", "perplexity of the reference answers under the model", S, needs_reference=True,
           headline=True, plotted=True, better=LOWER),
    Metric("judge/fidelity", "LLM judge: persona fidelity (1-10)", S, headline=True),
    Metric("judge/win_rate_vs_", "LLM judge: win rate against each opponent", S),
    Metric("persona_share_turns_", "tone_classifier share over user turns a to n of a conversation"),
    Metric("repeats_previous", "repeats the previous answer of its conversation", better=LOWER),
]  # fmt: skip


def register(metric: Metric) -> Metric:
    """Add a metric to the table (after the others); its name must be new."""
    if any(existing.name == metric.name for existing in METRICS):
        raise ValueError(f"metric {metric.name!r} is registered already")
    METRICS.append(metric)
    return metric


def unregister(name: str) -> None:
    """Remove a metric from the table (tests register their own)."""
    METRICS[:] = [metric for metric in METRICS if metric.name != name]


def spec(name: str) -> Metric | None:
    """The metric called ``name``, or the family it belongs to (``marker/emoji`` -> ``marker/``)."""
    exact = next((metric for metric in METRICS if metric.name == name), None)
    if exact is not None:
        return exact
    return next((x for x in METRICS if x.name.endswith(("/", "_")) and name.startswith(x.name)), None)


def names(**flags: bool) -> list[str]:
    """The metrics (not families) with these flags, in table order: ``names(headline=True)``."""
    return [
        metric.name
        for metric in METRICS
        if not metric.name.endswith(("/", "_"))
        and all(getattr(metric, flag) == wanted for flag, wanted in flags.items())
    ]


def computed(kind: Kind) -> list[Metric]:
    """The metrics of this kind the scorer computes itself, in table order."""
    return [metric for metric in METRICS if metric.kind is kind and metric.compute is not None]


def better(name: str) -> Better:
    """Which way ``name`` is better (higher when it is not registered)."""
    metric = spec(name)
    return metric.better if metric else Better.HIGHER


def is_paired(name: str) -> bool:
    """Whether ``name`` gets a candidate-minus-other difference (unregistered names do)."""
    metric = spec(name)
    return metric.paired if metric else True
