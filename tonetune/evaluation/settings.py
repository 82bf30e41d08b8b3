"""The evaluation's settings once converted: the typed ``evaluation.*`` with its sampling checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tonetune.config import typed
from tonetune.errors import ConfigError
from tonetune.generation.sampling import Sampling
from tonetune.schemas import DType
from tonetune.schemas.evaluation import (
    FOLLOW_UPS,
    CapabilitySettings,
    ClassifierSettings,
    ContestantSpec,
    ContrastSettings,
    EvaluationConfig,
    MultiTurnSettings,
    PressureSettings,
    QuestionSettings,
)

__all__ = [
    "FOLLOW_UPS",
    "REFERENCE",
    "CapabilitySettings",
    "ClassifierSettings",
    "ContestantSpec",
    "ContrastSettings",
    "EvaluationSettings",
    "MultiTurnSettings",
    "PressureSettings",
    "QuestionSettings",
]

REFERENCE = "reference"
"""The row of the dataset's own reference answers (not a contestant)."""
NEUTRAL_CONTESTANT = "__neutral__"
"""The base answering the readers' train questions unprompted (their neutral side), among the answers."""
RESERVED_NAMES = {REFERENCE: "the dataset's reference answers", NEUTRAL_CONTESTANT: "the base's own answers"}
SOURCES = {"base", "run", "endpoint"}


@dataclass
class EvaluationSettings:
    """Everything an evaluation needs."""

    questions: QuestionSettings
    contestants: dict[str, ContestantSpec]
    sampling: Sampling
    batch_size: int
    dtype: DType
    classifier: ClassifierSettings
    pressure: PressureSettings
    multi_turn: MultiTurnSettings
    capability: CapabilitySettings
    judge: Any
    judge_candidate: str
    samples_in_report: int
    contrast: ContrastSettings = field(default_factory=ContrastSettings)

    @classmethod
    def from_cfg(cls, node: Any) -> EvaluationSettings:
        """Convert ``evaluation.*`` (composed, typed, or read back from a run) once; checks every value."""
        config = typed(EvaluationConfig, node)
        contestants = {name: spec for name, spec in config.contestants.items() if spec}
        for taken, by in RESERVED_NAMES.items():
            if taken in contestants:
                raise ConfigError(f"evaluation.contestants.{taken}: the name is taken by {by}")
        for name, spec in contestants.items():
            if spec.source not in SOURCES:
                raise ConfigError(
                    f"evaluation.contestants.{name}.source={spec.source!r} is not base, run or endpoint"
                )
        return cls(
            questions=config.questions,
            contestants=contestants,
            sampling=Sampling.from_config(config.sampling, key="evaluation.sampling"),
            batch_size=config.batch_size,
            dtype=DType(config.dtype),
            classifier=config.classifier,
            pressure=config.pressure,
            multi_turn=config.multi_turn,
            capability=config.capability,
            judge=config.judge,
            judge_candidate=config.judge_candidate,
            samples_in_report=config.samples_in_report,
            contrast=config.contrast,
        )
