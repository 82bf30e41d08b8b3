"""The line-up: the models an evaluation holds (one copy where one is enough) and its contestants.

An adapter run's base and fine-tuned contestants are one model with the adapter off or on; a
freeze/full run needs its base beside it. After training, the model already in memory is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hydra
from peft import PeftModel

from tonetune.evaluation.contestants import Contestant, EndpointContestant, LocalContestant
from tonetune.evaluation.settings import EvaluationSettings
from tonetune.generation.engine import BASE, Engine, cast_for_decoding
from tonetune.llm.cache import ResponseCache
from tonetune.models.base_models import load_causal_lm, load_tokenizer
from tonetune.models.runs import Run, load_run_model, read_run
from tonetune.persona import persona_instructions
from tonetune.schemas import DType


@dataclass
class Models:
    """Engines for the fine-tuned model and its base, and the adapter that selects each."""

    run: Run
    finetuned: Engine
    finetuned_adapter: str | None
    base: Engine
    base_adapter: str | None
    dtype: DType
    """What the local contestants decode in (``evaluation.dtype``)."""

    @property
    def shared(self) -> bool:
        """Whether base and fine-tuned are one copy of the weights."""
        return self.base is self.finetuned


def load_models(run: Run, dtype: DType) -> Models:
    """Load ``run``: one model for adapter runs, the run and its base for freeze/full runs."""
    model, tokenizer = load_run_model(run)
    return models_from(run, model, tokenizer, dtype)


def models_from(run: Run, model: Any, tokenizer: Any, dtype: DType) -> Models:
    """Models around a fine-tuned model already in memory (e.g. just trained), decoding in ``dtype``."""
    finetuned = Engine(model, tokenizer, dtype=dtype)
    if isinstance(model, PeftModel):
        # the run's own adapter answers as "finetuned"; other runs' adapters may join the same base
        return Models(run, finetuned, model.active_adapter, finetuned, BASE, dtype)
    base = Engine(load_causal_lm(run.base_model), load_tokenizer(run.base_model), dtype=dtype)
    return Models(run, finetuned, None, base, None, dtype)


def other_run(other: Run, name: str, models: Models) -> tuple[Engine, str | None]:
    """Another run as a contestant: an adapter on the shared base when it can be, else its own model."""
    shared = models.finetuned.model
    same_base = isinstance(shared, PeftModel) and other.is_adapter and name not in shared.peft_config
    if (
        same_base
        and other.base_model.name == models.run.base_model.name
        and (other.adapter.quantization == models.run.adapter.quantization)
    ):
        load_run_model(other, adapter_name=name, base=shared)
        cast_for_decoding(shared, models.dtype)  # the adapter just loaded comes in float32
        return models.finetuned, name
    return Engine(*load_run_model(other), dtype=models.dtype), None


def build_contestants(
    settings: EvaluationSettings, run: Run, models: Models, cache: ResponseCache
) -> list[Contestant]:
    """Every configured contestant, in config order."""
    prompt = persona_instructions(run.persona)
    contestants: list[Contestant] = []
    for name, spec in settings.contestants.items():
        with_prompt = spec.system_prompt if spec.system_prompt is not None else run.trained_with_prompt
        system = prompt if with_prompt else None
        if spec.source == "base":
            contestants.append(LocalContestant(name, models.base, models.base_adapter, system))
        elif spec.source == "run" and spec.run_dir:
            engine, adapter = other_run(read_run(spec.run_dir), name, models)
            contestants.append(LocalContestant(name, engine, adapter, system))
        elif spec.source == "run":
            contestants.append(LocalContestant(name, models.finetuned, models.finetuned_adapter, system))
        else:
            client = hydra.utils.instantiate(
                spec.endpoint, cache=cache, role=f"evaluation.contestants.{name}.endpoint"
            )
            contestants.append(EndpointContestant(name, client, system))
    return contestants
