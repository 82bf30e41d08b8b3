"""What every objective declares, and how a config node becomes one (bound at the door)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, ClassVar

import torch
from hydra.utils import get_class
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from tonetune.errors import ConfigError

Batch = dict[str, torch.Tensor]


class Reads(str, Enum):
    """The data an objective trains on."""

    chat = "chat"
    """Conversations; the assistant's turns are trained."""
    pairs = "pairs"
    """Preference pairs (TRL's ``prompt``, ``chosen``, ``rejected``)."""
    text = "text"
    """A plain-text corpus; every token is trained."""


@dataclass
class ObjectiveConfig:
    """Settings every objective has."""

    name: str = "objective"
    """Shown in logs and run configs."""


@dataclass
class StepResult:
    """A step's loss, what to log beside it, and how many examples it covered."""

    loss: torch.Tensor
    batch_size: int
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class Objective:
    """A training loss over one batch, with the declarations the training loop reads."""

    Config: ClassVar[type] = ObjectiveConfig
    reads: ClassVar[Reads] = Reads.chat
    needs_reference: ClassVar[bool] = False
    """Whether DPO-style reference log-probabilities are computed once before training."""
    token_nll: ClassVar[bool] = False
    """Whether the loss is a mean token NLL, so that ``exp(val/loss)`` is a perplexity."""

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    def data_options(self) -> dict[str, Any]:
        """Extra arguments for the data module (e.g. packing for the corpus)."""
        return {}

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        """The loss of one batch."""
        raise NotImplementedError


def build_objective(node: Mapping[str, Any], key: str = "objective") -> Objective:
    """The objective ``node["_target_"]`` names, its other fields bound to the class's ``Config``.

    A misspelled field or a value of the wrong type is a ``ConfigError`` naming ``<key>.<field>``.
    """
    values = dict(OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node)
    target = values.pop("_target_", None)
    if not target:
        raise ConfigError(f"{key}: no _target_; name an objective class (see conf/objective/)")
    try:
        cls = get_class(target)
    except Exception as error:
        raise ConfigError(f"{key}._target_={target}: not an importable class ({error})") from None
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise ConfigError(f"{key}._target_={target}: not a tonetune Objective")
    known = {f.name for f in fields(cls.Config)}
    if unknown := sorted(set(values) - known):
        raise ConfigError(f"{key}.{unknown[0]}: not a setting of {cls.__name__} ({', '.join(sorted(known))})")
    try:
        config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls.Config), values))
    except OmegaConfBaseException as error:
        raise ConfigError(f"{key}.{error.key}: {error.msg}") from None
    return cls(config)
