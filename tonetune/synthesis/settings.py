"""What the stages of ``tonetune-synthesize`` read, from its config typed at the door."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tonetune.schemas import PersonaConfig, QuestionSetConfig
from tonetune.schemas.synthesize import (
    AnswerSettings,
    ContrastSettings,
    ConversationSettings,
    FilterSettings,
    PreferenceSettings,
    QuestionSource,
    SplitSettings,
    SynthesisQuestions,
    SynthesizeConfig,
)

__all__ = [
    "AnswerSettings",
    "ContrastSettings",
    "ConversationSettings",
    "FilterSettings",
    "PreferenceSettings",
    "QuestionSource",
    "SplitSettings",
    "SynthesisQuestions",
    "SynthesisSettings",
]


@dataclass
class SynthesisSettings:
    """Everything ``synthesize`` needs, typed."""

    persona: PersonaConfig
    question_set: QuestionSetConfig
    questions: SynthesisQuestions
    answers: AnswerSettings
    conversations: ConversationSettings
    preferences: PreferenceSettings
    contrast: ContrastSettings
    split: SplitSettings
    filters: FilterSettings
    data_dir: Path
    run_dir: Path
    overwrite: bool
    seed: int
    seed_data: str | None = None
    """A dataset whose conversations are the first turns (kept as they are; its splits too)."""

    @classmethod
    def from_cfg(cls, config: SynthesizeConfig) -> SynthesisSettings:
        """The parts of the typed config that the stages of synthesis read."""
        return cls(
            persona=config.persona,
            question_set=config.question_set,
            questions=config.questions,
            answers=config.answers,
            conversations=config.conversations,
            preferences=config.preferences,
            contrast=config.contrast,
            split=config.split,
            filters=config.filters,
            data_dir=Path(config.data_dir),
            run_dir=Path(config.paths.output_dir),
            overwrite=config.overwrite,
            seed=config.seed,
            seed_data=config.seed_data,
        )
