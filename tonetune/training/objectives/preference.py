"""What preference objectives share: chosen and rejected scored in one pass, TRL-style logs.

Preference batches hold chosen and rejected answers stacked in one batch (chosen rows first); one
forward pass scores both, each pair's prompt run once where the model allows it
(``tonetune.models.shared_prompt``), and the LM head only on answer positions.
"""

from __future__ import annotations

import torch
from torch import nn

from tonetune.models.shared_prompt import pair_logprobs
from tonetune.training.objectives.base import Batch, Objective, Reads, StepResult


class PreferenceObjective(Objective):
    """A loss over (chosen; rejected) sequence log-probabilities."""

    reads = Reads.pairs

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        """Score chosen and rejected in one pass, then the preference loss."""
        logps, counts = pair_logprobs(model, batch)
        return self.loss(logps, counts, logps.shape[0] // 2, batch.get("reference_logps"))

    def loss(
        self, logps: torch.Tensor, counts: torch.Tensor, half: int, reference: torch.Tensor | None
    ) -> StepResult:
        """The loss from summed log-probabilities (rows ``:half`` chosen) and answer token counts."""
        raise NotImplementedError


def preference_logs(
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


def chosen_nll(logps: torch.Tensor, counts: torch.Tensor, half: int) -> torch.Tensor:
    """Mean per-token NLL of the chosen answers."""
    return -(logps[:half] / counts[:half].clamp(min=1)).mean()
