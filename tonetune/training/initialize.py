"""Where training starts: the base model, or a run it continues (``init_from``).

Continuing an adapter run (LoRA, DoRA, QLoRA) trains that run's adapter on (its settings replace
``adapter.*``); continuing a freeze/full run starts from its weights, with ``adapter.*`` on top. A
DPO stage started this way takes that run as its reference model.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, open_dict
from peft import set_peft_model_state_dict
from safetensors.torch import load_file
from torch import nn

from tonetune.config import typed
from tonetune.errors import ConfigError
from tonetune.models.adapters import build_trainable_model
from tonetune.models.runs import ADAPTER_WEIGHTS, read_run
from tonetune.schemas import AdapterConfig, BaseModelConfig

log = logging.getLogger(__name__)


def resolve_init_from(cfg: DictConfig) -> None:
    """Make ``cfg`` describe what training really starts from (the saved config must load the run back)."""
    if not cfg.get("init_from"):
        return
    run = read_run(cfg.init_from)
    if run.base_model.name != cfg.base_model.name:
        raise ConfigError(
            f"init_from={cfg.init_from}: trained on base model {run.base_model.name!r}, not "
            f"{cfg.base_model.name!r}; set base_model to the run's"
        )
    with open_dict(cfg):
        if run.is_adapter:
            log.info(
                "init_from: continuing %s's %s adapter (its adapter.* settings)", run.name, run.adapter.name
            )
            cfg.adapter = run.cfg.adapter
        else:
            log.info("init_from: starting from %s's %s weights", run.name, run.adapter.name)
            cfg.base_model.source = "hub"
            cfg.base_model.path = str(run.model_dir.resolve())


def trainable_model(cfg: DictConfig) -> nn.Module:
    """The model to train, its starting weights loaded (``resolve_init_from`` has run)."""
    base_model, adapter = typed(BaseModelConfig, cfg.base_model), typed(AdapterConfig, cfg.adapter)
    model = build_trainable_model(base_model, adapter)
    if cfg.get("init_from"):
        run = read_run(cfg.init_from)
        if run.is_adapter:
            set_peft_model_state_dict(model, load_file(run.model_dir / ADAPTER_WEIGHTS))
    return model
