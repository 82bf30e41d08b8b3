"""What a training run leaves behind: model weights, tokenizer, resolved config, metrics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from tonetune.runtime import save_resolved_config

log = logging.getLogger(__name__)

MODEL_DIR = "model"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"


def save_run(run_dir: Path, model: Any, tokenizer: PreTrainedTokenizerBase, cfg: DictConfig) -> Path:
    """Save adapter (or full) weights as safetensors with the tokenizer and the resolved config.

    LoRA/DoRA/QLoRA runs save only the adapter (``adapter_model.safetensors``); freeze and full
    runs save the whole model, since their base weights changed.
    """
    model_dir = run_dir / MODEL_DIR
    if isinstance(model, PeftModel):
        model.save_pretrained(model_dir)
    else:
        model.config.use_cache = True
        model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    save_resolved_config(cfg, run_dir / CONFIG_FILE)
    return model_dir
