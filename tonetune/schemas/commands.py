"""The whole config of ``tonetune-evaluate``, ``-arena`` and ``-export``, typed at composition."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from tonetune.schemas.evaluation import EvaluationConfig
from tonetune.schemas.sampling import SamplingConfig
from tonetune.schemas.train import PathsConfig

# OmegaConf reads Optional[...], not `X | None`, in dataclass fields.
# ruff: noqa: UP045


@dataclass
class EvaluateConfig:
    """Everything ``tonetune-evaluate`` reads (``conf/evaluate.yaml``)."""

    task_name: str = "evaluate"
    tags: list[str] = field(default_factory=list)
    run_dir: str = MISSING
    """The tonetune-train run folder to evaluate."""
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    logger: Any = None
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class ArenaConfig:
    """Everything ``tonetune-arena`` reads (``conf/arena.yaml``)."""

    task_name: str = "arena"
    run_dir: Any = MISSING
    """One run folder, or a list of adapter runs of one base model."""
    contestants: Optional[list[str]] = None
    endpoints: dict[str, Any] = field(default_factory=dict)
    """OpenAI-compatible LLM client configs (``_target_``) by name."""
    questions: Optional[str] = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    votes: str = MISSING
    host: str = "127.0.0.1"
    port: int = 7860
    seed: int = 0
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class GGUFSettings:
    """``gguf.*`` of conf/export.yaml."""

    enabled: bool = True
    dtype: str = "f16"
    tokenizer_pre: Optional[str] = None


@dataclass
class ExportConfig:
    """Everything ``tonetune-export`` reads (``conf/export.yaml``)."""

    task_name: str = "export"
    run_dir: str = MISSING
    out_dir: str = MISSING
    overwrite: bool = False
    """Replace tonetune's own earlier export there (never your files)."""
    check_prompts: list[str] = field(default_factory=list)
    check_tokens: int = 32
    verify: bool = False
    """Compare llama.cpp's greedy answers with the merged model's (needs llama-cpp-python)."""
    verify_prompts: list[str] = field(default_factory=list)
    gguf: GGUFSettings = field(default_factory=GGUFSettings)
    paths: PathsConfig = field(default_factory=PathsConfig)
