"""Training objectives: what a step's loss asks of the model.

- ``sft``: next-token loss on the assistant's tokens (end-of-turn included).
- ``lm``: next-token loss on every token of a plain-text corpus (self-supervised).
- ``dpo``: Direct Preference Optimization against reference log-probabilities computed once before
  training (sigmoid or IPO loss, plus an optional NLL term on the chosen answer, TRL's ``rpo_alpha``).
- ``orpo``: odds-ratio preference optimisation; no reference model.

Preference batches hold chosen and rejected answers stacked in one batch (chosen rows first), so
one forward pass scores both, with the LM head only on answer positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from tonetune.models.loss import masked_lm_loss, sequence_logprobs
from tonetune.schemas import ObjectiveConfig, ObjectiveKind, PreferenceLoss

Batch = dict[str, torch.Tensor]


@dataclass
class StepResult:
    """A step's loss, what to log beside it, and how many examples it covered."""

    loss: torch.Tensor
    batch_size: int
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class Objective:
    """Supervised next-token loss on labelled positions (``sft``; ``lm`` labels every token)."""

    needs_reference = False

    def __init__(self, config: ObjectiveConfig) -> None:
        self.config = config

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        """The loss of one batch."""
        loss, n_tokens = masked_lm_loss(model, batch)
        return StepResult(loss, n_tokens)


class PreferenceObjective(Objective):
    """DPO or ORPO on stacked (chosen; rejected) batches."""

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        """Score chosen and rejected in one pass, then the preference loss."""
        logps, counts = sequence_logprobs(model, batch)
        half = logps.shape[0] // 2
        if self.config.kind == ObjectiveKind.orpo:
            return self._orpo(logps, counts, half)
        return self._dpo(logps, counts, half, batch["reference_logps"])

    def _dpo(
        self, logps: torch.Tensor, counts: torch.Tensor, half: int, reference: torch.Tensor
    ) -> StepResult:
        beta = self.config.beta
        chosen_reward = beta * (logps[:half] - reference[:half])
        rejected_reward = beta * (logps[half:] - reference[half:])
        margin = chosen_reward - rejected_reward
        if self.config.loss_type == PreferenceLoss.ipo:
            # IPO regresses the log-ratio margin (per token, as in the paper) towards 1 / (2 beta).
            per_token = (logps - reference) / counts.clamp(min=1)
            loss = ((per_token[:half] - per_token[half:]) - 1 / (2 * beta)) ** 2
        else:
            loss = -F.logsigmoid(margin)
        loss = loss.mean()
        nll = -(logps[:half] / counts[:half].clamp(min=1)).mean()
        if self.config.nll_weight:
            loss = loss + self.config.nll_weight * nll
        return StepResult(loss, half, _preference_logs(chosen_reward, rejected_reward, nll))

    def _orpo(self, logps: torch.Tensor, counts: torch.Tensor, half: int) -> StepResult:
        mean_logps = logps / counts.clamp(min=1)
        chosen, rejected = mean_logps[:half], mean_logps[half:]
        # log odds(p) = log p - log(1 - p), with p the per-token mean likelihood (the ORPO paper's).
        log_odds = (chosen - rejected) - (
            torch.log1p(-chosen.exp().clamp(max=1 - 1e-6)) - torch.log1p(-rejected.exp().clamp(max=1 - 1e-6))
        )
        ratio_loss = -F.logsigmoid(log_odds).mean()
        nll = -chosen.mean()
        loss = nll + self.config.beta * ratio_loss
        beta = self.config.beta
        return StepResult(loss, half, _preference_logs(beta * chosen, beta * rejected, nll))


def _preference_logs(
    chosen: torch.Tensor, rejected: torch.Tensor, nll: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Rewards, margin and accuracy as TRL logs them."""
    return {
        "rewards/chosen": chosen.detach().mean(),
        "rewards/rejected": rejected.detach().mean(),
        "rewards/margin": (chosen - rejected).detach().mean(),
        "rewards/accuracy": (chosen > rejected).float().mean(),
        "nll_chosen": nll.detach(),
    }


def build_objective(config: ObjectiveConfig) -> Objective:
    """The objective for ``config.kind``."""
    if config.kind in {ObjectiveKind.dpo, ObjectiveKind.orpo}:
        objective = PreferenceObjective(config)
        objective.needs_reference = config.kind == ObjectiveKind.dpo
        return objective
    return Objective(config)
