"""Load what a server, the chat or the arena runs: one or several runs, an exported folder, or a base.

Several adapter runs of the same base model share one copy of it, each as a named adapter; a
request's ``model`` picks the adapter. A single run can instead be merged into its base (faster
answers); a QLoRA base is then dequantized first, never merged in 4-bit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from tonetune.errors import ConfigError
from tonetune.generation.engine import Engine
from tonetune.generation.sampling import Sampling
from tonetune.models.base_models import load_causal_lm, load_tokenizer
from tonetune.models.runs import Run, load_run_model, read_run
from tonetune.persona import persona_instructions
from tonetune.schemas import BaseModelConfig, DType

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    """One model id a server answers to, and how its requests are answered."""

    id: str
    adapter: str | None
    """The engine adapter that answers (``BASE``: adapters off; None: the model as loaded)."""
    system_prompt: str | None
    """Injected when a request has no system message."""
    sampling: Sampling
    """Defaults for what a request leaves out (the run's generation config)."""
    persona: str | None = None
    aliases: list[str] = field(default_factory=list)


@dataclass
class Served:
    """An engine and the model ids it answers to."""

    engine: Engine
    models: dict[str, ServedModel]

    def find(self, name: str) -> ServedModel | None:
        """The model served under ``name`` (its id or one of its aliases)."""
        if name in self.models:
            return self.models[name]
        return next((m for m in self.models.values() if name in m.aliases), None)


def load_served(
    run_dirs: Sequence[str],
    model_dir: str | None,
    base_model: BaseModelConfig | None,
    merge_adapter: bool,
    system_prompt: str = "auto",
    model_name: str | None = None,
    dtype: DType | None = None,
) -> Served:
    """Runs (several share one base), else an exported Hugging Face folder, else the base model.

    ``dtype``: the weights' dtype while decoding (None: as loaded).
    """
    if run_dirs:
        runs = [read_run(d) for d in run_dirs]
        served = _from_runs(runs, merge_adapter and len(runs) == 1, system_prompt, dtype)
    elif model_dir:
        served = _from_folder(Path(model_dir), system_prompt, dtype)
    elif base_model is not None:
        engine = Engine(load_causal_lm(base_model), load_tokenizer(base_model), dtype=dtype)
        served = Served(
            engine,
            {
                base_model.name: ServedModel(
                    base_model.name, None, _literal(system_prompt), Sampling.default()
                )
            },
        )
    else:
        raise ConfigError("give run_dir=..., model_dir=... or base_model=...")
    if model_name:
        if len(served.models) != 1:
            raise ConfigError(
                "model_name=... names a single served model; with several runs each keeps its own id"
            )
        only = next(iter(served.models.values()))
        served.models = {model_name: ServedModel(model_name, only.adapter, only.system_prompt, only.sampling)}
    return served


def _from_runs(runs: list[Run], merge: bool, system_prompt: str, dtype: DType | None) -> Served:
    first = runs[0]
    if len(runs) > 1:
        _check_shareable(runs)
    model, tokenizer = load_run_model(first, keep_quantized=not merge, adapter_name=_adapter_name(first, 0))
    for index, run in enumerate(runs[1:], start=1):
        load_run_model(run, adapter_name=_adapter_name(run, index), base=model)
    if merge and isinstance(model, PeftModel):
        model = model.merge_and_unload()
    engine = Engine(model, tokenizer, dtype=dtype)
    models = {}
    for index, run in enumerate(runs):
        adapter = _adapter_name(run, index) if isinstance(model, PeftModel) else None
        models[run.served_name] = ServedModel(
            run.served_name, adapter, _prompt_for(run, system_prompt), run_sampling(run), run.persona.name
        )
    _add_persona_aliases(models)
    return Served(engine, models)


def _check_shareable(runs: list[Run]) -> None:
    """Several runs share one base only as adapters of the same base model, quantized alike."""
    for run in runs:
        if not run.is_adapter:
            raise ConfigError(
                f"run_dir={run.dir}: a {run.adapter.kind.value} run cannot share a base; serve it alone"
            )
    first = runs[0]
    for run in runs[1:]:
        if (
            run.base_model.name != first.base_model.name
            or run.adapter.quantization != first.adapter.quantization
        ):
            raise ConfigError(
                f"run_dir={run.dir}: its base ({run.base_model.name}, "
                f"quantization {run.adapter.quantization}) "
                f"differs from {first.dir}'s; runs served together must share their base model"
            )


def _adapter_name(run: Run, index: int) -> str:
    return f"run{index}-{run.persona.name}"


def _add_persona_aliases(models: dict[str, ServedModel]) -> None:
    """A run also answers to its persona's name when it is the only run of that persona."""
    personas = [m.persona for m in models.values()]
    for served in models.values():
        if served.persona and personas.count(served.persona) == 1:
            served.aliases.append(served.persona)


def _prompt_for(run: Run, mode: str) -> str | None:
    """The system prompt for requests without one: ``auto`` (as trained), ``persona``, ``none`` or text."""
    if mode == "auto":
        return persona_instructions(run.persona) if run.trained_with_prompt else None
    if mode == "persona":
        return persona_instructions(run.persona)
    return _literal(mode)


def _literal(mode: str) -> str | None:
    if mode in {"auto", "none"}:
        return None
    if mode == "persona":
        raise ConfigError("system_prompt=persona needs a run_dir (the persona comes from its config)")
    return mode


def run_sampling(run: Run) -> Sampling:
    """The run's default decoding: the evaluation's sampling it saved as its generation config."""
    return sampling_from(run.model_dir)


def sampling_from(folder: Path) -> Sampling:
    """Sampling defaults from a model folder's generation_config.json (tonetune's default without one)."""
    if not (folder / "generation_config.json").is_file():
        return Sampling.default()
    return Sampling.from_generation_config(GenerationConfig.from_pretrained(folder))


def _from_folder(path: Path, system_prompt: str, dtype: DType | None) -> Served:
    if not path.is_dir():
        raise ConfigError(f"model_dir={path}: no such folder")
    model = AutoModelForCausalLM.from_pretrained(path)
    engine = Engine(model, AutoTokenizer.from_pretrained(path), dtype=dtype)
    served = ServedModel(path.name, None, _literal(system_prompt), sampling_from(path))
    return Served(engine, {path.name: served})
