"""``conf/train.yaml``: the whole ``tonetune-train`` config, typed at composition.

A misspelled key or a value of the wrong type anywhere in it fails when Hydra composes the config,
naming the key, before anything loads. Nodes that name a class by ``_target_`` (trainer, callbacks,
loggers, optimizer, scheduler, the objective) stay open (``Any``): they go to
``hydra.utils.instantiate`` (the objective is bound to its own config class at the door).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING

from tonetune.schemas import AdapterConfig, BaseModelConfig, PersonaConfig
from tonetune.schemas.evaluation import EvaluationConfig

# OmegaConf reads Optional[...], not `X | None`, in dataclass fields.
# ruff: noqa: UP045


@dataclass
class DataConfig:
    """``data.*``: which rows, how they are split, tokenized and batched (``conf/data/_chat.yaml``)."""

    _target_: str = "tonetune.data.datamodule.ChatDataModule"
    """The data module; the objective swaps the default for the reader it needs."""
    source: str = MISSING
    columns: dict[str, str] = field(default_factory=dict)
    """Field names in the rows (messages, question, answer, category, split, prompt, chosen, ...)."""
    val_fraction: float = 0.1
    max_length: int = 256
    allow_truncated: bool = False
    """Train even when every example is longer than ``max_length`` (refused otherwise)."""
    batch_size: int = 8
    eval_batch_size: Optional[int] = 16
    group_by_length: bool = True
    pad_to_multiple_of: Optional[int] = None
    num_workers: int = 0
    seed: int = 42
    limit_train_examples: Optional[int] = None


class CheckpointSelect(str, Enum):
    """Which weights ``model/`` holds."""

    last = "last"
    best = "best"


@dataclass
class CheckpointConfig:
    """``checkpoint.*``."""

    select: CheckpointSelect = CheckpointSelect.last
    """last (when training ended) or best (lowest validation loss)."""


@dataclass
class ModuleConfig:
    """``module.*``: the LightningModule's own settings."""

    warmup_ratio: float = 0.05
    compile: bool = False


@dataclass
class PathsConfig:
    """``paths.*``: every path tonetune reads or writes (``conf/paths/default.yaml``)."""

    root_dir: str = MISSING
    output_root: str = "outputs"
    data_root: str = "data"
    cache_dir: str = MISSING
    response_cache: str = MISSING
    shared_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class TrainConfig:
    """Everything ``tonetune-train`` reads."""

    task_name: str = "train"
    tags: list[str] = field(default_factory=list)
    seed: int = 42
    persona: PersonaConfig = MISSING
    base_model: BaseModelConfig = MISSING
    adapter: AdapterConfig = MISSING
    objective: Any = MISSING
    data: DataConfig = MISSING
    optimizer: Any = MISSING
    scheduler: Any = None
    trainer: Any = MISSING
    callbacks: Any = None
    logger: Any = None
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    ckpt_path: Optional[str] = None
    init_from: Optional[str] = None
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    prepend_system_prompt: bool = False
    validate_before_training: bool = True
    module: ModuleConfig = field(default_factory=ModuleConfig)
    evaluate_after_training: bool = False
    optimized_metric: Optional[str] = None
    single_turn_run: Optional[str] = None
    """A run an experiment compares against (``experiment=elon_gpt4_multiturn``)."""
