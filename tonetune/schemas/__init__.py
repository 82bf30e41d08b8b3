"""Typed schemas for tonetune's own config groups.

Each YAML file of a group extends its schema through its defaults list, so a misspelled field or a
value of the wrong type fails at composition and names the field. A task converts its nodes once
(``tonetune.config.typed``) and passes these objects down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING


@dataclass
class Marker:
    """A regular expression that identifies the persona's tone in an answer."""

    name: str = MISSING
    """Short name used in metrics and reports, e.g. ``hashtag``."""
    pattern: str = MISSING
    """Python regular expression searched in the answer (case-insensitive)."""
    required: bool = False
    """When true, synthesis drops teacher answers that lack this marker."""


@dataclass
class FewShotExample:
    """One question/answer pair shown to the teacher as an example of the tone."""

    question: str = MISSING
    answer: str = MISSING


@dataclass
class PressureProbe:
    """An instruction that pulls a model out of its persona (the evaluation's pressure suite)."""

    name: str = MISSING
    """Short name in the report, e.g. ``plain_one_sentence``."""
    template: str = "{question}"
    """The user message; ``{question}`` stands for the evaluation question."""
    system: str | None = None
    """A system prompt that replaces the persona's (e.g. a neutral assistant prompt)."""


@dataclass
class PersonaConfig:
    """A persona card: who speaks, how, and how to recognise the tone."""

    name: str = MISSING
    """Identifier used in paths and run names (snake_case)."""
    display_name: str = MISSING
    description: str = MISSING
    system_prompt: str = MISSING
    """The prompt that asks a general model to speak as the persona."""
    style_rules: list[str] = field(default_factory=list)
    min_words: int = 1
    max_words: int = 100
    markers: list[Marker] = field(default_factory=list)
    few_shot: list[FewShotExample] = field(default_factory=list)
    pressure: list[PressureProbe] = field(default_factory=list)
    """Extra pressure probes for this persona, added to the evaluation's common suite."""
    language: str = "en"
    """The language the persona answers in (ISO 639-1); synthesis filters answers in another."""


@dataclass
class QuestionPrompt:
    """One prompt that asks the teacher for a list of questions of one category."""

    category: str = MISSING
    prompt: str = MISSING
    """The request; ``{n}`` stands for the number of questions wanted."""


@dataclass
class QuestionSetConfig:
    """Named question-generation prompts, and the shipped question lists of the set."""

    name: str = MISSING
    description: str = ""
    questions_per_prompt: int = 50
    prompts: list[QuestionPrompt] = field(default_factory=list)
    bank: str | None = None
    """A training question bank (JSONL with question and category) the offline teacher answers."""
    held_out: str | None = None
    """Held-out evaluation questions, written for tonetune and never in the bank."""


class AdapterKind(str, Enum):
    """How the base model's weights are trained."""

    lora = "lora"
    freeze = "freeze"
    full = "full"


class Quantization(str, Enum):
    """bitsandbytes 4-bit formats for the frozen base weights."""

    nf4 = "nf4"
    fp4 = "fp4"


@dataclass
class AdapterConfig:
    """What is trained: LoRA/DoRA adapters (optionally over a 4-bit base), the last blocks, or all."""

    name: str = MISSING
    kind: AdapterKind = AdapterKind.lora
    lr: float = 2e-4
    """Learning rate that suits this adapter; ``optimizer.lr`` defaults to it."""
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] | None = None
    """LoRA targets; null takes the base model's ``target_modules``."""
    use_dora: bool = False
    use_rslora: bool = False
    quantization: Quantization | None = None
    """4-bit base weights (QLoRA); only with ``kind: lora``."""
    double_quant: bool = True
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: much less memory, about a third more time."""
    trainable_blocks: int = 2
    """``kind: freeze``: how many of the last transformer blocks train."""
    train_lm_head: bool = True
    """``kind: freeze``: whether the LM head (and tied embeddings) train."""


class DType(str, Enum):
    """Weights' floating-point type."""

    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class ModelSource(str, Enum):
    """Where a base model's weights come from."""

    embedded = "embedded"
    hub = "hub"
    tiny = "tiny"


@dataclass
class BaseModelConfig:
    """A base causal LM and what an adapter needs to know about it."""

    name: str = MISSING
    source: ModelSource = ModelSource.hub
    path: str | None = None
    """Hub id or local folder (``source: hub``)."""
    gguf_package: str | None = None
    """Python package whose folder holds the GGUF file (``source: embedded``)."""
    gguf_file: str | None = None
    tiny_config: dict[str, Any] | None = None
    """Architecture of a randomly initialised model (``source: tiny``)."""
    target_modules: list[str] = field(default_factory=list)
    blocks: str = "model.layers"
    """Attribute path of the list of transformer blocks (for ``adapter.kind=freeze``)."""
    block_class: str | None = None
    """Import path of the transformer block class (FSDP wraps each block)."""
    dtype: DType = DType.float32
    gguf_tokenizer_pre: str | None = None
    """llama.cpp's pre-tokenizer name for GGUF export (e.g. smollm, qwen2, llama-bpe)."""
    revision: str | None = None
    trust_remote_code: bool = False
