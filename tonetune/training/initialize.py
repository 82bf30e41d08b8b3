"""Where training starts: the base model, or a run it continues (``init_from``).

Continuing an adapter run (LoRA, DoRA, QLoRA) trains that run's adapter on (its settings replace
``adapter.*``); continuing a freeze/full run starts from its weights, with ``adapter.*`` on top. A
DPO stage started this way takes that run as its reference model.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from peft import set_peft_model_state_dict
from safetensors.torch import load_file
from torch import nn

from tonetune.errors import ConfigError
from tonetune.models.adapters import build_trainable_model
from tonetune.models.runs import ADAPTER_WEIGHTS, read_run
from tonetune.schemas import ModelSource
from tonetune.schemas.train import TrainConfig

log = logging.getLogger(__name__)


def resolve_init_from(config: TrainConfig) -> TrainConfig:
    """What training really starts from, as the config to save (it must load the run back)."""
    if not config.init_from:
        return config
    run = read_run(config.init_from)
    if run.base_model.name != config.base_model.name:
        raise ConfigError(
            f"init_from={config.init_from}: trained on base model {run.base_model.name!r}, not "
            f"{config.base_model.name!r}; set base_model to the run's"
        )
    if run.is_adapter:
        log.info("init_from: continuing %s's %s adapter (its adapter.* settings)", run.name, run.adapter.name)
        optimizer = dict(config.optimizer)
        if optimizer.get("lr") == config.adapter.lr:  # it followed ${adapter.lr}: follow the run's adapter
            optimizer["lr"] = run.adapter.lr
        return replace(config, adapter=run.adapter, optimizer=optimizer)
    log.info("init_from: starting from %s's %s weights", run.name, run.adapter.name)
    base_model = replace(config.base_model, source=ModelSource.hub, path=str(run.model_dir.resolve()))
    return replace(config, base_model=base_model)


def trainable_model(config: TrainConfig) -> nn.Module:
    """The model to train, its starting weights loaded (``resolve_init_from`` has run)."""
    model = build_trainable_model(config.base_model, config.adapter)
    if config.init_from:
        run = read_run(config.init_from)
        if run.is_adapter:
            set_peft_model_state_dict(model, load_file(run.model_dir / ADAPTER_WEIGHTS))
    return model
