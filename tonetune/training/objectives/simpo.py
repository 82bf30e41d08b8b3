"""SimPO (Meng et al., 2024): a reference-free, length-normalised preference loss.

The reward of an answer is ``beta`` times its mean token log-probability, so a long answer gains
nothing from its length, and the chosen answer must beat the rejected one by a margin ``gamma``:
``-log sigmoid(beta * (mean logp chosen - mean logp rejected) - gamma)``. The paper's settings are
``beta`` 2.0 to 2.5 and ``gamma / beta`` about 0.5 (TRL's ``CPOTrainer(loss_type="simpo")``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tonetune.training.objectives.base import ObjectiveConfig, StepResult
from tonetune.training.objectives.preference import PreferenceObjective, chosen_nll, preference_logs


@dataclass
class SimPOConfig(ObjectiveConfig):
    """SimPO's settings."""

    name: str = "simpo"
    beta: float = 2.0
    """Scale of the length-normalised reward."""
    gamma: float = 1.0
    """Target reward margin between chosen and rejected."""
    nll_weight: float = 0.0
    """Weight of the chosen answer's NLL (CPO's ``cpo_alpha``; the SimPO paper uses none)."""


class SimPO(PreferenceObjective):
    """SimPO on stacked (chosen; rejected) batches; no reference model."""

    Config = SimPOConfig

    def loss(
        self, logps: torch.Tensor, counts: torch.Tensor, half: int, reference: torch.Tensor | None
    ) -> StepResult:
        """Margin loss on ``beta`` times the mean token log-probabilities."""
        rewards = self.config.beta * logps / counts.clamp(min=1)
        chosen, rejected = rewards[:half], rewards[half:]
        loss = -F.logsigmoid(chosen - rejected - self.config.gamma).mean()
        nll = chosen_nll(logps, counts, half)
        if self.config.nll_weight:
            loss = loss + self.config.nll_weight * nll
        return StepResult(loss, half, preference_logs(chosen, rejected, nll))
