"""Supervised fine-tuning: next-token loss on the assistant's tokens (end-of-turn included)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tonetune.models.loss import masked_lm_loss
from tonetune.training.objectives.base import Batch, Objective, ObjectiveConfig, Reads, StepResult


@dataclass
class SFTConfig(ObjectiveConfig):
    """SFT has no settings of its own."""

    name: str = "sft"


class SFT(Objective):
    """Mean token NLL on labelled positions."""

    Config = SFTConfig
    reads = Reads.chat
    token_nll = True

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        """The loss of one batch, weighted by its labelled tokens."""
        loss, n_tokens = masked_lm_loss(model, batch)
        return StepResult(loss, n_tokens)
