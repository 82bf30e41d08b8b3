"""What trains: LoRA / DoRA adapters (over a full-precision or 4-bit base), the last blocks, or everything."""

from __future__ import annotations

from operator import attrgetter

from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from torch import nn
from transformers import PreTrainedModel

from tonetune.errors import ConfigError
from tonetune.models.base_models import load_causal_lm, quantization_config, torch_dtype
from tonetune.schemas import AdapterConfig, AdapterKind, BaseModelConfig


def build_trainable_model(base_model: BaseModelConfig, adapter: AdapterConfig) -> nn.Module:
    """Load the base model and make the parts that ``adapter`` names trainable."""
    quant = quantization_config(adapter, torch_dtype(base_model))
    model = load_causal_lm(base_model, quantization=quant)
    return make_trainable(model, base_model, adapter, quantized=quant is not None)


def make_trainable(
    model: PreTrainedModel, base_model: BaseModelConfig, adapter: AdapterConfig, quantized: bool = False
) -> nn.Module:
    """Wrap or unfreeze ``model`` (already loaded, e.g. an SFT run's merged weights) as ``adapter`` says."""
    model.config.use_cache = False
    if adapter.kind == AdapterKind.lora:
        return _apply_lora(model, adapter, base_model, quantized)
    _enable_gradient_checkpointing(model, adapter.gradient_checkpointing)
    if adapter.kind == AdapterKind.freeze:
        return _freeze_all_but_last_blocks(model, adapter, base_model)
    model.requires_grad_(True)
    return model


def lora_config(adapter: AdapterConfig, base_model: BaseModelConfig) -> LoraConfig:
    """Peft's LoraConfig for our adapter spec (DoRA and rsLoRA are LoRA flags)."""
    targets = adapter.target_modules or base_model.target_modules
    if not targets:
        raise ConfigError(
            f"no LoRA target modules: set adapter.target_modules or base_model.target_modules "
            f"for base model {base_model.name!r}"
        )
    return LoraConfig(
        r=adapter.r,
        lora_alpha=adapter.alpha,
        lora_dropout=adapter.dropout,
        target_modules=list(targets),
        use_dora=adapter.use_dora,
        use_rslora=adapter.use_rslora,
        task_type="CAUSAL_LM",
    )


def _apply_lora(
    model: PreTrainedModel, adapter: AdapterConfig, base_model: BaseModelConfig, quantized: bool
) -> PeftModel:
    if quantized:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=adapter.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    else:
        _enable_gradient_checkpointing(model, adapter.gradient_checkpointing)
    try:
        return get_peft_model(model, lora_config(adapter, base_model))
    except ValueError as err:
        raise ConfigError(f"adapter.target_modules for base model {base_model.name!r}: {err}") from err


def _enable_gradient_checkpointing(model: PreTrainedModel, enabled: bool) -> None:
    if enabled:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _freeze_all_but_last_blocks(
    model: PreTrainedModel, adapter: AdapterConfig, base_model: BaseModelConfig
) -> PreTrainedModel:
    """Transfer learning: only the last ``trainable_blocks`` blocks, the final norm and the LM head train."""
    try:
        blocks = attrgetter(base_model.blocks)(model)
    except AttributeError as err:
        raise ConfigError(
            f"base_model.blocks={base_model.blocks!r} is not an attribute of {type(model).__name__}"
        ) from err
    n = adapter.trainable_blocks
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
    if adapter.train_lm_head:
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
