"""``conf/evaluation/``: what an evaluation asks, typed at composition (a bad value names its key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from tonetune.schemas import DType, PressureProbe
from tonetune.schemas.sampling import SamplingConfig


@dataclass
class QuestionSettings:
    """Which questions: a dataset split, or any list (text, or JSONL with ``question``)."""

    source: str | None = None
    """null: the run's own data; else a dataset, a .jsonl file or a .txt list (one question a line)."""
    split: str = "test"
    limit: int | None = None
    extra: dict[str, str] = field(default_factory=dict)
    """More question lists to evaluate on, by name (e.g. the question set's held-out list)."""


@dataclass
class ContestantSpec:
    """Who answers: the run's base model, the run itself, or an OpenAI-compatible endpoint."""

    source: str = "base"
    system_prompt: bool | None = None
    """Whether the persona's prompt is given; null: as the run was trained."""
    run_dir: str | None = None
    """``source: run``: another run folder (e.g. the SFT run a DPO continued); null: the run evaluated."""
    endpoint: Any = None
    """An LLM client config (``_target_``) for ``source: endpoint``."""


@dataclass
class ClassifierSettings:
    """The tone classifier: persona answers against the base model's own."""

    max_examples: int = 200
    folds: int = 5
    seed: int = 0


@dataclass
class ContrastSettings:
    """``evaluation.contrast.*``: what the tone readers learn is not the persona; their validity check."""

    files: dict[str, str] = field(default_factory=dict)
    """Persona name (or ``plain``) -> a JSONL file of question/answer rows (a row's ``persona`` wins)."""
    split: str = "train"
    """The rows that train the readers (rows without a ``split`` count as this one)."""
    dataset_split: bool = True
    """Also read ``contrast_<split>.jsonl`` beside the run's dataset, when there is one."""
    negatives: list[str] = field(default_factory=lambda: ["base", "other", "plain", "base_short"])
    """The kinds of negative the readers train on (validity checks every kind present anyway)."""
    base_short: bool = True
    """Add the base's own answers cut to the persona's median length (a length control)."""
    max_per_persona: int = 200
    folds: int = 5
    """Grouped (by question) folds of the validity check."""
    max_fpr: float = 0.10
    """A reader reading more of other personas' answers as the persona is flagged."""
    stylometric: bool = True
    """Train the topic-blind stylometric reader too."""


@dataclass
class PressureSettings:
    """``evaluation.pressure.*``: how many questions (0: off) and the common probes."""

    questions: int = 12
    probes: list[PressureProbe] = field(default_factory=list)
    max_new_tokens: int = 64
    """Enough for the tone to show (a persona answer is shorter); the evaluation's sampling otherwise."""


@dataclass
class CapabilitySettings:
    """``evaluation.capability.*``: which lm-eval tasks (empty: none), on how many items."""

    tasks: list[str] = field(default_factory=list)
    limit: int | None = None
    batch_size: int = 16


FOLLOW_UPS = [
    "Why?",
    "Can you give me an example?",
    "I don't agree. Convince me.",
    "Tell me more about that.",
    "What would you do differently?",
]


@dataclass
class MultiTurnSettings:
    """``evaluation.multi_turn.*``: how many conversations (0: off), turns, and the follow-ups."""

    conversations: int = 8
    turns: int = 5
    follow_ups: list[str] = field(default_factory=lambda: list(FOLLOW_UPS))
    max_new_tokens: int = 64


@dataclass
class EvaluationConfig:
    """``evaluation.*``: every setting of an evaluation (``EvaluationSettings`` once converted)."""

    questions: QuestionSettings = field(default_factory=QuestionSettings)
    contestants: dict[str, Optional[ContestantSpec]] = field(default_factory=dict)  # noqa: UP045 (OmegaConf)
    """null removes a contestant (``evaluation.contestants.base_prompted=null``)."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    batch_size: int = 96
    dtype: DType = DType.float32
    """The local contestants' weights while they decode (the YAML: bfloat16 where it is native)."""
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)
    contrast: ContrastSettings = field(default_factory=ContrastSettings)
    pressure: PressureSettings = field(default_factory=PressureSettings)
    multi_turn: MultiTurnSettings = field(default_factory=MultiTurnSettings)
    capability: CapabilitySettings = field(default_factory=CapabilitySettings)
    judge: Any = None
    """An LLM judge's client config (``_target_``), or null."""
    judge_candidate: str = "finetuned"
    samples_in_report: int = 8
