"""``conf/synthesize.yaml``: the whole ``tonetune-synthesize`` config, typed at composition."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING

from tonetune.errors import ConfigError
from tonetune.schemas import BaseModelConfig, PersonaConfig, QuestionSetConfig
from tonetune.schemas.train import PathsConfig

# OmegaConf reads Optional[...], not `X | None`, in dataclass fields.
# ruff: noqa: UP045


class QuestionSource(str, Enum):
    """Where the questions come from."""

    auto = "auto"
    """The question set's bank for the local teacher, the teacher's own lists otherwise."""
    teacher = "teacher"
    bank = "bank"
    files = "files"
    """Only ``questions.files``."""


@dataclass
class SynthesisQuestions:
    """How questions are collected (``questions.*``)."""

    source: QuestionSource = QuestionSource.auto
    files: list[str] = field(default_factory=list)
    max_rounds: int = 3
    per_request: Optional[int] = 10
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
    """Candidates asked for per answer in all, over every round."""
    candidates: int = 1
    """Candidates (distinct seeds) sent per round; the first that passes the filters is kept."""
    few_shot: bool = True
    temperature: float = 0.8
    max_tokens: int = 120

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.max_attempts < 1:
            raise ConfigError(
                f"answers.candidates={self.candidates}, answers.max_attempts={self.max_attempts}: "
                "each must be at least 1"
            )


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
class ContrastSettings:
    """The contrast split for the tone readers (``contrast.*``): the same questions, not the persona."""

    enabled: Optional[bool] = None
    """null: on, unless the teacher runs in this process (``teacher=local``: off, it is CPU time)."""
    personas: list[str] = field(default_factory=lambda: ["shakespeare_bard", "stoic_mentor", "elon_musk"])
    """Persona cards of conf/persona/ that answer too (the run's own persona is skipped)."""
    plain: bool = True
    """Also plain, neutral answers at the persona's typical length."""
    plain_words: Optional[int] = None
    """null: the median word count of the kept persona answers (the card's min/max midpoint if none)."""
    splits: list[str] = field(default_factory=lambda: ["train", "validation", "test"])
    max_questions: Optional[int] = None
    """At most this many questions per split (null: all)."""
    max_tokens: int = 160


@dataclass
class SplitSettings:
    """Shares of questions held out (``split.*``)."""

    validation: float = 0.1
    test: float = 0.2


@dataclass
class FilterSettings:
    """Which checks a teacher answer must pass (``filters.*``; see ``synthesis.filters``)."""

    empty: bool = True
    refusal: bool = True
    """"as an AI", "I'm sorry, I can't" ..."""
    unparseable: bool = True
    """Chat markup or JSON instead of an answer."""
    truncated: bool = True
    """Stopped by max_tokens."""
    length: bool = True
    """Outside persona.min_words..max_words."""
    markers: bool = True
    """Persona markers with ``required: true``."""
    language: bool = True
    """In another language than persona.language (py3langid, offline)."""
    language_confidence: float = 0.8


@dataclass
class SynthesizeConfig:
    """Everything ``tonetune-synthesize`` reads."""

    task_name: str = "synthesize"
    tags: list[str] = field(default_factory=list)
    seed: int = 42
    persona: PersonaConfig = MISSING
    question_set: QuestionSetConfig = MISSING
    teacher: Any = MISSING
    """The teacher's LLM client config (``_target_``)."""
    follow_up_writer: Any = None
    """Another LLM client for the user's side of follow-ups (null: the teacher)."""
    base_model: BaseModelConfig = MISSING
    """The student, whose own answers are the rejected side of preference pairs."""
    logger: Any = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    data_dir: str = MISSING
    overwrite: bool = False
    seed_data: Optional[str] = None
    questions: SynthesisQuestions = field(default_factory=SynthesisQuestions)
    answers: AnswerSettings = field(default_factory=AnswerSettings)
    conversations: ConversationSettings = field(default_factory=ConversationSettings)
    preferences: PreferenceSettings = field(default_factory=PreferenceSettings)
    contrast: ContrastSettings = field(default_factory=ContrastSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    split: SplitSettings = field(default_factory=SplitSettings)
    log_samples: int = 50
