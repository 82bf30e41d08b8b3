"""What an evaluation produces, below the code that produces and writes it."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from tonetune.data.question_lists import QuestionSet
from tonetune.evaluation.contestants import Answers
from tonetune.evaluation.scoring import Scores
from tonetune.stats import Estimate


@dataclass
class SetResult:
    """One question set's answers and scores, by contestant."""

    questions: QuestionSet
    answers: dict[str, Answers] = field(default_factory=dict)
    scores: dict[str, Scores] = field(default_factory=dict)
    differences: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Candidate minus each other contestant, per metric (paired by question)."""


@dataclass(frozen=True)
class SetSummary:
    """One question set as metrics.json has it: each contestant's estimates, and the differences."""

    source: str
    questions: int
    has_references: bool
    estimates: dict[str, dict[str, Estimate]]
    """Contestant -> metric -> estimate with its 95% interval."""
    differences: dict[str, dict[str, Any]] = field(default_factory=dict)
    unbounded: dict[str, dict[str, float]] = field(default_factory=dict)
    """Contestant -> metric -> a value without an interval (the judge's)."""

    def metrics(self) -> dict[str, dict[str, float]]:
        """Contestant -> metric -> value (the values without an interval last)."""
        return {
            name: {**{k: e.value for k, e in scores.items()}, **self.unbounded.get(name, {})}
            for name, scores in self.estimates.items()
        }

    def intervals(self) -> dict[str, dict[str, list[float]]]:
        """Contestant -> metric -> [low, high]."""
        return {name: {k: [e.low, e.high] for k, e in s.items()} for name, s in self.estimates.items()}

    def to_json(self) -> dict[str, Any]:
        """The set's entry of metrics.json (a new dict each call)."""
        return {
            "source": self.source,
            "questions": self.questions,
            "has_references": self.has_references,
            "metrics": self.metrics(),
            "intervals": self.intervals(),
            "differences": copy.deepcopy(self.differences),
        }


@dataclass(frozen=True)
class EvaluationResult(Mapping):
    """A whole evaluation: context, the question sets (the main one first), judge, readers, sections.

    It reads like its metrics.json (``result["metrics"]``), so callers not yet typed keep working;
    nothing that writes it changes it.
    """

    context: dict[str, Any]
    sets: dict[str, SetSummary]
    judge: dict[str, Any] | None = None
    classifier: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    """Pressure, multi-turn and capability, as JSON (each present only when it ran)."""

    @property
    def main(self) -> SetSummary:
        """The first question set (the headline's)."""
        return next(iter(self.sets.values()))

    def __or__(self, sections: dict[str, Any]) -> EvaluationResult:
        """This result with more sections."""
        return replace(self, sections={**self.sections, **sections})

    def to_json(self) -> dict[str, Any]:
        """metrics.json's content (a new dict each call)."""
        main = self.main.to_json()
        return {
            "context": copy.deepcopy(self.context),
            "metrics": main["metrics"],
            "intervals": main["intervals"],
            "differences": main["differences"],
            "sets": {name: s.to_json() for name, s in self.sets.items()},
            "judge": copy.deepcopy(self.judge),
            "classifier": copy.deepcopy(self.classifier),
            **copy.deepcopy(self.sections),
        }

    @cached_property
    def _json(self) -> dict[str, Any]:
        return self.to_json()

    def __getitem__(self, key: str) -> Any:
        return self._json[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)
