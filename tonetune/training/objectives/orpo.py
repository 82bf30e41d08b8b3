"""ORPO: the chosen answer's NLL plus an odds-ratio penalty on the rejected one; no reference model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tonetune.training.objectives.base import ObjectiveConfig, StepResult
from tonetune.training.objectives.preference import PreferenceObjective, preference_logs


@dataclass
class ORPOConfig(ObjectiveConfig):
    """ORPO's settings."""

    name: str = "orpo"
    beta: float = 0.1
    """Weight of the odds-ratio term (the NLL term always has weight 1)."""


class ORPO(PreferenceObjective):
    """Odds-ratio preference optimisation on per-token mean likelihoods (the ORPO paper's)."""

    Config = ORPOConfig

    def loss(
        self, logps: torch.Tensor, counts: torch.Tensor, half: int, reference: torch.Tensor | None
    ) -> StepResult:
        """NLL of the chosen answers plus ``beta`` times the odds-ratio loss."""
        mean_logps = logps / counts.clamp(min=1)
        chosen, rejected = mean_logps[:half], mean_logps[half:]
        # log odds(p) = log p - log(1 - p), with p the per-token mean likelihood.
        log_odds = (chosen - rejected) - (
            torch.log1p(-chosen.exp().clamp(max=1 - 1e-6)) - torch.log1p(-rejected.exp().clamp(max=1 - 1e-6))
        )
        ratio_loss = -F.logsigmoid(log_odds).mean()
        nll = -chosen.mean()
        beta = self.config.beta
        return StepResult(nll + beta * ratio_loss, half, preference_logs(beta * chosen, beta * rejected, nll))
