"""Read back what ``tonetune-train`` wrote: a run folder's config (once, typed) and its model.

Adapter runs load on one copy of their base model; several runs of the same base share it, each
as a named adapter (``adapter_name``), which is how the evaluation and the server hold one model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from tonetune.config import typed
from tonetune.errors import ConfigError, DivergedError, ModelNotFoundError
from tonetune.models.base_models import first_non_finite, load_causal_lm, quantization_config, torch_dtype
from tonetune.schemas import AdapterConfig, BaseModelConfig, PersonaConfig
from tonetune.schemas.train import DataConfig

MODEL_DIR = "model"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass
class Run:
    """A finished training run: where it is and what it was (the saved config, read once)."""

    dir: Path
    persona: PersonaConfig
    base_model: BaseModelConfig
    adapter: AdapterConfig
    data: DataConfig
    """What it trained on (``data.source`` and its column names are what an evaluation reads)."""
    trained_with_prompt: bool = False
    """Whether training showed the persona's system prompt (``prepend_system_prompt``)."""

    @property
    def name(self) -> str:
        """The run folder's name."""
        return self.dir.name

    @property
    def model_dir(self) -> Path:
        """Weights and tokenizer."""
        return self.dir / MODEL_DIR

    @property
    def is_adapter(self) -> bool:
        """True when the run saved a PEFT adapter (LoRA/DoRA/QLoRA) rather than full weights."""
        return (self.model_dir / ADAPTER_CONFIG).is_file()

    @property
    def served_name(self) -> str:
        """The model id a server lists it under: persona and run."""
        return f"{self.persona.name}/{self.name}"


def read_run(run_dir: str | Path) -> Run:
    """The run folder's saved config as a typed Run; a folder that is not a run gets one clear line."""
    path = Path(run_dir)
    config = path / CONFIG_FILE
    if not config.is_file():
        raise ModelNotFoundError(f"run_dir={run_dir}: no {CONFIG_FILE}; is this a tonetune-train run folder?")
    cfg = OmegaConf.load(config)
    known = {f.name for f in fields(DataConfig)}  # a run written by another version may hold more
    return Run(
        path,
        typed(PersonaConfig, cfg.persona),
        typed(BaseModelConfig, cfg.base_model),
        typed(AdapterConfig, cfg.adapter),
        typed(DataConfig, {k: v for k, v in cfg.data.items() if k in known}),
        bool(cfg.get("prepend_system_prompt", False)),
    )


def load_run_model(
    run: Run, keep_quantized: bool = True, adapter_name: str = "default", base: Any = None
) -> tuple[Any, PreTrainedTokenizerBase]:
    """(model in eval mode, tokenizer) of ``run``.

    Args:
        run: The run.
        keep_quantized: For QLoRA runs, load the base in 4-bit as it was trained; False loads it in
            full precision (what merging needs).
        adapter_name: The name the run's adapter gets.
        base: A PeftModel of the same base to add this run's adapter to (several runs, one base).

    Weights that hold a NaN or an infinity (a run that diverged) are refused with DivergedError.
    """
    if not run.model_dir.is_dir():
        raise ModelNotFoundError(f"run_dir={run.dir}: no {MODEL_DIR}/ folder (did training finish?)")
    tokenizer = AutoTokenizer.from_pretrained(run.model_dir)
    if not run.is_adapter:
        if base is not None:
            raise ConfigError(
                f"run_dir={run.dir}: a {run.adapter.kind.value} run has no adapter to share a base"
            )
        model = _read_weights(
            run,
            lambda: AutoModelForCausalLM.from_pretrained(run.model_dir, dtype=torch_dtype(run.base_model)),
        )
        _check_finite(run, model, None)
        return model.eval(), tokenizer
    if base is not None:
        _read_weights(run, lambda: base.load_adapter(str(run.model_dir), adapter_name=adapter_name))
        _check_finite(run, base, adapter_name)
        return base.eval(), tokenizer
    quant = quantization_config(run.adapter, torch_dtype(run.base_model)) if keep_quantized else None
    causal_lm = load_causal_lm(run.base_model, quantization=quant)
    model = _read_weights(
        run, lambda: PeftModel.from_pretrained(causal_lm, run.model_dir, adapter_name=adapter_name)
    )
    _check_finite(run, model, adapter_name)
    return model.eval(), tokenizer


def _check_finite(run: Run, model: Any, adapter: str | None) -> None:
    """Refuse a model (or only its adapter ``adapter``) whose weights are not all finite."""
    named = ((n, p.detach()) for n, p in model.named_parameters() if adapter is None or f".{adapter}." in n)
    broken = first_non_finite(named)
    if broken is not None:
        raise DivergedError(
            f"{run.model_dir}: refused: {broken} is not finite (the run diverged); "
            "train it again with a lower optimizer.lr"
        )


def _read_weights(run: Run, load: Any) -> Any:
    """Run ``load``; a truncated or corrupt weights file becomes one line naming it."""
    try:
        return load()
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelNotFoundError(
            f"{run.model_dir}: cannot read the saved weights ({_first_line(err)})"
        ) from err
    except Exception as err:  # safetensors raises its own SafetensorError on a damaged header
        if type(err).__name__ != "SafetensorError":
            raise
        raise ModelNotFoundError(
            f"{run.model_dir}: the weights file is damaged or truncated ({_first_line(err)})"
        ) from err


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
