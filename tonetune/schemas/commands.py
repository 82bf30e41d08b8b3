"""The whole config of every command but train and synthesize, typed at composition."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from tonetune.schemas import BaseModelConfig, DType
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
    dtype: DType = DType.float32
    """The weights' dtype while decoding (the YAML: bfloat16 where it is native)."""
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


@dataclass
class ServerSettings:
    """``server.*``: how the server batches and guards (``conf/serve.yaml``)."""

    api_key_env: Optional[str] = "TONETUNE_SERVE_API_KEY"
    max_batch_size: int = 8
    batch_timeout: float = 0.05
    max_n: int = 4
    default_max_tokens: int = 256
    timeout: float = 120.0
    max_body_bytes: int = 1_000_000
    max_message_chars: int = 100_000


@dataclass
class ServeConfig:
    """Everything ``tonetune-serve`` reads (``conf/serve.yaml``)."""

    task_name: str = "serve"
    run_dir: Any = None
    """One run folder or a list (adapter runs of one base share it); null: model_dir or base_model."""
    model_dir: Optional[str] = None
    merge_adapter: bool = True
    dtype: DType = DType.float32
    """The weights' dtype while decoding (the YAML: bfloat16 where it is native)."""
    model_name: Optional[str] = None
    system_prompt: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    server: ServerSettings = field(default_factory=ServerSettings)
    base_model: BaseModelConfig = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class ChatConfig:
    """Everything ``tonetune-chat`` reads (``conf/chat.yaml``); null sampling values keep the run's."""

    task_name: str = "chat"
    run_dir: Any = None
    model_dir: Optional[str] = None
    merge_adapter: bool = True
    dtype: DType = DType.float32
    """The weights' dtype while decoding (the YAML: bfloat16 where it is native)."""
    system_prompt: str = "auto"
    max_new_tokens: Optional[int] = 256
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    repetition_penalty: Optional[float] = None
    base_model: BaseModelConfig = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class SweepReportConfig:
    """Everything ``tonetune-sweep-report`` reads (``conf/sweep_report.yaml``)."""

    task_name: str = "sweep_report"
    sweep_dir: str = MISSING
    metric: Optional[str] = None
    """null: the sweep's own optimized metric."""
    paths: PathsConfig = field(default_factory=PathsConfig)
