"""Read back what ``tonetune-train`` wrote: a run folder's config, model and tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from tonetune.errors import ModelNotFoundError
from tonetune.models import load_causal_lm, quantization_config, torch_dtype
from tonetune.training.artifacts import CONFIG_FILE, MODEL_DIR

ADAPTER_CONFIG = "adapter_config.json"


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The resolved config a training run saved (``<run_dir>/config.yaml``)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"run_dir={run_dir}: no {CONFIG_FILE}; is this a tonetune-train run folder?")
    return OmegaConf.load(path)  # type: ignore[return-value]


def is_adapter_run(run_dir: str | Path) -> bool:
    """True when the run saved a PEFT adapter (LoRA/DoRA/QLoRA) rather than full weights."""
    return (Path(run_dir) / MODEL_DIR / ADAPTER_CONFIG).is_file()


def load_trained(
    run_dir: str | Path, keep_quantized: bool = True
) -> tuple[Any, PreTrainedTokenizerBase, DictConfig]:
    """(model in eval mode, tokenizer, run config) of a finished training run.

    Args:
        run_dir: The run folder ``tonetune-train`` printed.
        keep_quantized: For QLoRA runs, load the base in 4-bit as it was trained; False loads
            it in full precision (what merging needs).
    """
    cfg = load_run_config(run_dir)
    model_dir = Path(run_dir) / MODEL_DIR
    if not model_dir.is_dir():
        raise ModelNotFoundError(f"run_dir={run_dir}: no {MODEL_DIR}/ folder (did training finish?)")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if is_adapter_run(run_dir):
        quant = quantization_config(cfg.adapter, torch_dtype(cfg.base_model)) if keep_quantized else None
        base = load_causal_lm(cfg.base_model, quantization=quant)
        model = PeftModel.from_pretrained(base, model_dir)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype(cfg.base_model))
    model.eval()
    return model, tokenizer, cfg
