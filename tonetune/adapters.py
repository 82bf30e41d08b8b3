"""What trains: LoRA / DoRA adapters (over a full-precision or 4-bit base), the last blocks, or everything."""

from __future__ import annotations

import logging
from operator import attrgetter
from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from torch import nn
from transformers import PreTrainedModel

from tonetune.errors import ConfigError
from tonetune.models import as_dict, load_causal_lm, quantization_config, torch_dtype

log = logging.getLogger(__name__)


def build_trainable_model(base_model: Any, adapter: Any) -> nn.Module:
    """Load the base model and make the parts that ``adapter`` names trainable."""
    base_model, adapter = as_dict(base_model), as_dict(adapter)
    gradient_checkpointing = adapter.get("gradient_checkpointing", False)
    quant = quantization_config(adapter, torch_dtype(base_model))
    model = load_causal_lm(base_model, quantization=quant)
    model.config.use_cache = False
    kind = adapter["kind"]
    if kind == "lora":
        return _apply_lora(model, adapter, base_model, quantized=quant is not None, gc=gradient_checkpointing)
    _enable_gradient_checkpointing(model, gradient_checkpointing)
    if kind == "freeze":
        return _freeze_all_but_last_blocks(model, adapter, base_model)
    if kind == "full":
        model.requires_grad_(True)
        return model
    raise ConfigError(f"adapter.kind={kind!r} is not one of lora, freeze, full")


def lora_config(adapter: dict[str, Any], base_model: dict[str, Any]) -> LoraConfig:
    """Peft's LoraConfig for our adapter spec (DoRA and rsLoRA are LoRA flags)."""
    targets = adapter.get("target_modules") or base_model.get("target_modules")
    if not targets:
        raise ConfigError(
            f"no LoRA target modules: set adapter.target_modules or base_model.target_modules "
            f"for base model {base_model['name']!r}"
        )
    return LoraConfig(
        r=adapter["r"],
        lora_alpha=adapter["alpha"],
        lora_dropout=adapter["dropout"],
        target_modules=list(targets),
        use_dora=adapter.get("use_dora", False),
        use_rslora=adapter.get("use_rslora", False),
        task_type="CAUSAL_LM",
    )


def _apply_lora(
    model: PreTrainedModel, adapter: dict[str, Any], base_model: dict[str, Any], quantized: bool, gc: bool
) -> PeftModel:
    if quantized:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gc,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    else:
        _enable_gradient_checkpointing(model, gc)
    try:
        return get_peft_model(model, lora_config(adapter, base_model))
    except ValueError as err:
        raise ConfigError(f"adapter.target_modules for base model {base_model['name']!r}: {err}") from err


def _enable_gradient_checkpointing(model: PreTrainedModel, enabled: bool) -> None:
    if enabled:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _freeze_all_but_last_blocks(
    model: PreTrainedModel, adapter: dict[str, Any], base_model: dict[str, Any]
) -> PreTrainedModel:
    """Transfer learning: only the last ``trainable_blocks`` blocks, the final norm and the LM head train."""
    try:
        blocks = attrgetter(base_model["blocks"])(model)
    except AttributeError as err:
        raise ConfigError(
            f"base_model.blocks={base_model['blocks']!r} is not an attribute of {type(model).__name__}"
        ) from err
    n = adapter["trainable_blocks"]
    if not 0 < n <= len(blocks):
        raise ConfigError(
            f"adapter.trainable_blocks={n} must be between 1 and the model's {len(blocks)} blocks"
        )
    model.requires_grad_(False)
    for block in blocks[-n:]:
        block.requires_grad_(True)
    final_norm = getattr(model.get_decoder(), "norm", None)
    if final_norm is not None:
        final_norm.requires_grad_(True)
    if adapter.get("train_lm_head", True):
        # With tied embeddings this also trains the input embeddings (they are one tensor).
        model.get_output_embeddings().requires_grad_(True)
    return model


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters, counting 4-bit packed weights at their real size."""
    if isinstance(model, PeftModel):
        return model.get_nb_trainable_parameters()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
