"""What a training run leaves behind: model weights, tokenizer, resolved config, metrics.

Which weights ``model/`` holds is one rule, ``checkpoint.select``: ``last`` (the weights when
training ended) or ``best`` (the checkpoint with the lowest validation loss). The recipes use
``last``: on persona data the validation loss bottoms out early while the tone keeps improving
(docs/RESULTS.md), so the lowest loss is not the best persona.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from peft import PeftModel
from transformers import GenerationConfig, PreTrainedTokenizerBase

from tonetune.errors import DivergedError
from tonetune.generation.sampling import Sampling
from tonetune.models.base_models import first_non_finite
from tonetune.models.loss import causal_lm
from tonetune.models.runs import CONFIG_FILE, MODEL_DIR
from tonetune.runtime import save_resolved_config
from tonetune.schemas.train import TrainConfig

log = logging.getLogger(__name__)


def save_run(
    run_dir: Path, model: Any, tokenizer: PreTrainedTokenizerBase, config: TrainConfig, sampling: Sampling
) -> Path:
    """Save adapter (or full) weights as safetensors with the tokenizer, generation defaults and config.

    LoRA/DoRA/QLoRA runs save only the adapter (``adapter_model.safetensors``); freeze and full
    runs save the whole model, since their base weights changed. ``generation_config.json`` holds
    the evaluation's sampling (repetition penalty included): the chat and the server decode as the
    evaluation did, unless told otherwise. Weights that are not finite are never written (a diverged
    run raises DivergedError instead).
    """
    model_dir = run_dir / MODEL_DIR
    broken = first_non_finite((n, p.detach()) for n, p in model.named_parameters() if p.requires_grad)
    if broken is not None:
        raise DivergedError(f"{model_dir}: not written: {broken} is not finite (the run diverged)")
    if not isinstance(model, PeftModel):
        model.config.use_cache = True
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    generation_defaults(model, sampling).save_pretrained(model_dir)
    save_resolved_config(config, run_dir / CONFIG_FILE)
    return model_dir


def generation_defaults(model: Any, sampling: Sampling) -> GenerationConfig:
    """The model's generation config (its stop tokens) with the evaluation's decoding settings."""
    return sampling.to_generation_config(
        GenerationConfig.from_dict(causal_lm(model).generation_config.to_dict())
    )


def select_weights(trainer: L.Trainer, module: L.LightningModule, select: str) -> str:
    """Load the best checkpoint's trainable weights into ``module`` when ``select`` is ``best``.

    Returns what ``model/`` will hold: ``last``, or ``best (<checkpoint>)``.
    """
    best = best_checkpoint_path(trainer)
    if select != "best":
        return "last"
    if not best:
        log.warning(
            "checkpoint.select=best but no best checkpoint was kept (no validation ran): saving the last"
        )
        return "last (no best checkpoint)"
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state, strict=False)
    return f"best ({best})"


def best_checkpoint_path(trainer: L.Trainer) -> str:
    """The path of the best checkpoint kept by the (first) ModelCheckpoint, or ''."""
    keeper = next((c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)), None)
    return keeper.best_model_path if keeper is not None else ""
