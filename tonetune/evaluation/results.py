"""What an evaluation produces, below the code that produces and writes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tonetune.data.questions import QuestionSet
from tonetune.evaluation.contestants import Answers
from tonetune.evaluation.scoring import Scores


@dataclass
class SetResult:
    """One question set's answers and scores, by contestant."""

    questions: QuestionSet
    answers: dict[str, Answers] = field(default_factory=dict)
    scores: dict[str, Scores] = field(default_factory=dict)
    differences: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Candidate minus each other contestant, per metric (paired by question)."""
