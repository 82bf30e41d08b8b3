"""Load base models and their tokenizers: embedded GGUF, hub ids / local folders, or tiny random ones."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tonetune.config import default_cache_dir
from tonetune.errors import ConfigError, ModelNotFoundError
from tonetune.models.embedded import EMBEDDED_GGUF, EMBEDDED_PACKAGE, ensure_converted, find_package_file
from tonetune.schemas import AdapterConfig, AdapterKind, BaseModelConfig, DType, ModelSource

_DTYPES = {DType.float32: torch.float32, DType.bfloat16: torch.bfloat16, DType.float16: torch.float16}


def model_path(spec: BaseModelConfig) -> str:
    """What ``from_pretrained`` should read for this base model spec."""
    if spec.source == ModelSource.embedded:
        gguf = find_package_file(spec.gguf_package or EMBEDDED_PACKAGE, spec.gguf_file or EMBEDDED_GGUF)
        return str(ensure_converted(gguf, default_cache_dir()))
    if spec.source == ModelSource.tiny:
        from tonetune.models.tiny import materialize_tiny

        return str(materialize_tiny(spec))
    if not spec.path:
        raise ConfigError(f"base_model.path is required for base model {spec.name!r} (source: hub)")
    return spec.path


def load_tokenizer(spec: BaseModelConfig) -> PreTrainedTokenizerBase:
    """The base model's tokenizer, with a pad token and a chat template guaranteed."""
    path = model_path(spec)
    tokenizer = _from_pretrained(AutoTokenizer, path, spec)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ConfigError(f"base_model {spec.name!r}: its tokenizer ({path}) has no chat template")
    return tokenizer


def quantization_config(adapter: AdapterConfig, compute_dtype: torch.dtype) -> BitsAndBytesConfig | None:
    """Bitsandbytes 4-bit settings for QLoRA, or None when the base stays in full precision."""
    if adapter.quantization is None:
        return None
    if adapter.kind != AdapterKind.lora:
        raise ConfigError(
            f"adapter.quantization={adapter.quantization.value} needs adapter.kind=lora: "
            "4-bit weights cannot be trained directly"
        )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=adapter.quantization.value,
        bnb_4bit_use_double_quant=adapter.double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_causal_lm(spec: BaseModelConfig, quantization: BitsAndBytesConfig | None = None) -> PreTrainedModel:
    """Load the base causal LM in its configured dtype, optionally 4-bit quantized."""
    kwargs: dict[str, Any] = {"dtype": torch_dtype(spec)}
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs["device_map"] = {"": _quantized_device()}
    return _from_pretrained(AutoModelForCausalLM, model_path(spec), spec, **kwargs)


def torch_dtype(spec: BaseModelConfig) -> torch.dtype:
    """The dtype named by ``base_model.dtype`` (an enum: composition refuses any other name)."""
    return as_torch_dtype(spec.dtype)


def as_torch_dtype(dtype: DType | str) -> torch.dtype:
    """The torch dtype for a configured one (``float32``, ``bfloat16``, ``float16``)."""
    return _DTYPES[DType(dtype)]


def first_non_finite(named: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, or None."""
    for name, tensor in named:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def _quantized_device() -> str:
    """Bitsandbytes quantizes on the device it loads to: the GPU when there is one."""
    return f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"


def _from_pretrained(cls: Any, path: str, spec: BaseModelConfig, **kwargs: Any) -> Any:
    try:
        return cls.from_pretrained(
            path, revision=spec.revision, trust_remote_code=spec.trust_remote_code, **kwargs
        )
    except OSError as err:
        offline = " (this machine may be offline: use base_model=smollm2_135m)" if "/" in path else ""
        raise ModelNotFoundError(f"base_model {spec.name!r}: cannot load {path!r}{offline}: {err}") from err
