"""Direct Preference Optimization against reference log-probabilities computed once before training.

Sigmoid (the paper's) or IPO loss, plus an optional NLL term on the chosen answer (TRL's ``rpo_alpha``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F

from tonetune.training.objectives.base import ObjectiveConfig, StepResult
from tonetune.training.objectives.preference import PreferenceObjective, chosen_nll, preference_logs


class PreferenceLoss(str, Enum):
    """DPO loss variants."""

    sigmoid = "sigmoid"
    ipo = "ipo"


@dataclass
class DPOConfig(ObjectiveConfig):
    """DPO's settings."""

    name: str = "dpo"
    beta: float = 0.1
    """Strength of the pull towards the reference."""
    loss_type: PreferenceLoss = PreferenceLoss.sigmoid
    """``sigmoid`` (the DPO paper's) or ``ipo``."""
    nll_weight: float = 0.0
    """Weight of the chosen answer's NLL (TRL's ``rpo_alpha``)."""


class DPO(PreferenceObjective):
    """DPO on stacked (chosen; rejected) batches, with stored reference log-probabilities."""

    Config = DPOConfig
    needs_reference = True

    def loss(
        self, logps: torch.Tensor, counts: torch.Tensor, half: int, reference: torch.Tensor | None
    ) -> StepResult:
        """Sigmoid or IPO loss on the policy/reference log-ratio margin."""
        beta = self.config.beta
        chosen_reward = beta * (logps[:half] - reference[:half])
        rejected_reward = beta * (logps[half:] - reference[half:])
        if self.config.loss_type == PreferenceLoss.ipo:
            # IPO regresses the log-ratio margin (per token, as in the paper) towards 1 / (2 beta).
            per_token = (logps - reference) / counts.clamp(min=1)
            loss = ((per_token[:half] - per_token[half:]) - 1 / (2 * beta)) ** 2
        else:
            loss = -F.logsigmoid(chosen_reward - rejected_reward)
        loss = loss.mean()
        nll = chosen_nll(logps, counts, half)
        if self.config.nll_weight:
            loss = loss + self.config.nll_weight * nll
        return StepResult(loss, half, preference_logs(chosen_reward, rejected_reward, nll))
