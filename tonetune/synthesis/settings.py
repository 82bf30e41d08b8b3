"""The settings of ``tonetune-synthesize`` as typed objects (converted once from the Hydra config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from omegaconf import DictConfig

from tonetune.config import typed
from tonetune.errors import ConfigError
from tonetune.schemas import PersonaConfig, QuestionSetConfig


class QuestionSource(str, Enum):
    """Where the questions come from."""

    auto = "auto"
    """The question set's bank for the local teacher, the teacher's own lists otherwise."""
    teacher = "teacher"
    bank = "bank"
    files = "files"
    """Only ``questions.files``."""


@dataclass
class QuestionSettings:
    """How questions are collected (``questions.*``)."""

    source: QuestionSource = QuestionSource.auto
    files: list[str] = field(default_factory=list)
    max_rounds: int = 3
    per_request: int | None = 10
    near_duplicate_threshold: float = 0.85
    temperature: float = 0.9
    tokens_per_question: int = 30

    def __post_init__(self) -> None:
        if self.per_request is not None and self.per_request < 1:
            raise ConfigError(f"questions.per_request={self.per_request}: must be at least 1 (or null)")


@dataclass
class AnswerSettings:
    """How persona answers are asked for (``answers.*``)."""

    per_question: int = 1
    max_attempts: int = 3
    few_shot: bool = True
    temperature: float = 0.8
    max_tokens: int = 120


@dataclass
class ConversationSettings:
    """Multi-turn extension of a share of the conversations (``conversations.*``)."""

    share: float = 0.0
    """Share of answered questions whose conversation gets follow-ups (0: single-turn only)."""
    turns: int = 3
    """User turns per extended conversation, the first question included."""
    max_attempts: int = 3
    temperature: float = 0.9
    max_echo_similarity: float = 0.6
    """A follow-up answer more similar than this to the user's message or an earlier answer is rejected."""


@dataclass
class PreferenceSettings:
    """The preference split for DPO/ORPO (``preferences.*``)."""

    enabled: bool = True
    filtered_as_rejected: bool = False
    """Also pair each chosen answer with the teacher's own answers that the filters rejected."""
    max_tokens: int = 120


@dataclass
class SplitSettings:
    """Shares of questions held out (``split.*``)."""

    validation: float = 0.1
    test: float = 0.2


@dataclass
class SynthesisSettings:
    """Everything ``synthesize`` needs, typed."""

    persona: PersonaConfig
    question_set: QuestionSetConfig
    questions: QuestionSettings
    answers: AnswerSettings
    conversations: ConversationSettings
    preferences: PreferenceSettings
    split: SplitSettings
    data_dir: Path
    run_dir: Path
    overwrite: bool
    seed: int
    seed_data: str | None = None
    """A dataset whose conversations are the first turns (kept as they are; its splits too)."""

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> SynthesisSettings:
        """Convert the composed config once."""
        return cls(
            persona=typed(PersonaConfig, cfg.persona),
            question_set=typed(QuestionSetConfig, cfg.question_set),
            questions=typed(QuestionSettings, cfg.questions),
            answers=typed(AnswerSettings, cfg.answers),
            conversations=typed(ConversationSettings, cfg.conversations),
            preferences=typed(PreferenceSettings, cfg.preferences),
            split=typed(SplitSettings, cfg.split),
            data_dir=Path(cfg.data_dir),
            run_dir=Path(cfg.paths.output_dir),
            overwrite=bool(cfg.overwrite),
            seed=int(cfg.seed),
            seed_data=cfg.get("seed_data"),
        )
