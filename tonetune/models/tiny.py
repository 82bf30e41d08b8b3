"""Tiny randomly initialised models with the embedded tokenizer: the fast tests' base models.

Saved to the cache once, so a tiny model goes through exactly the same loading path as real ones
(4-bit quantization, run folders, merging, export).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from filelock import FileLock
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from tonetune.config import default_cache_dir, plain
from tonetune.errors import ConfigError
from tonetune.models.embedded import embedded_model_dir
from tonetune.schemas import BaseModelConfig

TINY_SEED = 0


def materialize_tiny(spec: BaseModelConfig) -> Path:
    """Write a random model for ``spec.tiny_config`` to the cache once, and return its folder."""
    arch = dict(plain(spec.tiny_config) or {})
    if "model_type" not in arch:
        raise ConfigError(f"base_model.tiny_config of {spec.name!r} needs a model_type (e.g. llama)")
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    arch.setdefault("vocab_size", len(tokenizer))
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        arch.setdefault(name, getattr(tokenizer, name))
    digest = hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:12]
    target = default_cache_dir() / "models" / f"tiny-{digest}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").is_file():
            _write(arch, tokenizer, target)
    return target


def _write(arch: dict, tokenizer, target: Path) -> None:
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    config = AutoConfig.for_model(**arch)
    # A private RNG: the weights depend only on the architecture, and the caller's seed is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
