"""Load what a server or chat runs.

A training run (adapter merged or not), an exported Hugging Face folder, or a plain base model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from tonetune.errors import ConfigError
from tonetune.models import as_dict, load_causal_lm, load_tokenizer
from tonetune.persona import persona_instructions
from tonetune.runs import load_run_config, load_trained

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model ready to generate, with what a chat front end needs to know about it."""

    model: Any
    tokenizer: Any
    name: str
    persona_prompt: str | None
    """The persona's instructions, when a persona is known."""
    trained_with_prompt: bool


def load_model(
    run_dir: str | None = None,
    model_dir: str | None = None,
    base_model: Any = None,
    merge_adapter: bool = True,
) -> LoadedModel:
    """Load ``run_dir`` (a tonetune-train run), else ``model_dir`` (a Hugging Face folder), else the base."""
    if run_dir:
        return _from_run(Path(run_dir), merge_adapter)
    if model_dir:
        path = Path(model_dir)
        if not path.is_dir():
            raise ConfigError(f"model_dir={model_dir}: no such folder")
        model = AutoModelForCausalLM.from_pretrained(path)
        return LoadedModel(model.eval(), AutoTokenizer.from_pretrained(path), path.name, None, False)
    if base_model is None:
        raise ConfigError("give run_dir=..., model_dir=... or base_model=...")
    model = load_causal_lm(base_model).eval()
    return LoadedModel(model, load_tokenizer(base_model), as_dict(base_model)["name"], None, False)


def _from_run(run_dir: Path, merge_adapter: bool) -> LoadedModel:
    cfg = load_run_config(run_dir)
    # Merging needs full-precision base weights; merging into 4-bit weights changes the outputs.
    model, tokenizer, _ = load_trained(run_dir, keep_quantized=not merge_adapter)
    if merge_adapter and isinstance(model, PeftModel):
        model = model.merge_and_unload()
    return LoadedModel(
        model.eval(),
        tokenizer,
        f"tonetune-{cfg.persona.name}-{run_dir.name}",
        persona_instructions(cfg.persona),
        bool(cfg.prepend_system_prompt),
    )


def system_prompt_for(loaded: LoadedModel, mode: str) -> str | None:
    """The system prompt for requests without one: ``auto`` (as trained), ``persona``, ``none`` or text."""
    if mode == "none":
        return None
    if mode == "persona":
        if loaded.persona_prompt is None:
            raise ConfigError("system_prompt=persona needs a run_dir (the persona comes from its config)")
        return loaded.persona_prompt
    if mode == "auto":
        return loaded.persona_prompt if loaded.trained_with_prompt else None
    return mode  # any other text is the prompt itself
