"""Choosing each row's next token with that row's own settings: penalty, temperature, top-p, seed."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tonetune.generation.sampling import Sampling


def penalise_repetition(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Transformers' repetition penalty for one row.

    Seen tokens' scores are divided (or, if negative, multiplied) by ``penalty``; ``seen`` holds the
    row's own tokens only, never padding.
    """
    if penalty == 1.0 or seen.numel() == 0:
        return logits
    scores = logits.gather(0, seen)
    scores = torch.where(scores < 0, scores * penalty, scores / penalty)
    return logits.scatter(0, seen, scores)


def nucleus(logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Rows' logits outside the smallest set whose probability reaches their ``top_p`` set to -inf."""
    ordered, order = torch.sort(logits, dim=-1, descending=False)
    cumulative = ordered.softmax(-1).cumsum(-1)
    drop = cumulative <= (1 - top_p)[:, None]
    drop[:, -1] = False  # always keep the most likely token
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


FAILED = -1
"""The token ``next_tokens`` gives a row whose scores are not usable (NaN, +inf, or all -inf)."""


def next_tokens(
    logits: torch.Tensor,
    histories: Sequence[torch.Tensor],
    samplings: Sequence[Sampling],
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """One token per row: argmax for greedy rows, a draw from the row's own generator otherwise.

    The penalty needs each row's own history; temperature and top-p are applied to all sampled rows
    at once (one sort), and every sampled row draws from its own seeded generator. A row whose scores
    or probabilities are not finite gets ``FAILED``, alone: the rows beside it are unaffected.
    """
    logits = logits.float()
    rows = [
        penalise_repetition(row, seen, s.repetition_penalty)
        for row, seen, s in zip(logits, histories, samplings, strict=True)
    ]
    logits = torch.stack(rows)
    chosen = logits.argmax(-1).masked_fill(~usable_scores(logits), FAILED)
    sampled = [i for i, s in enumerate(samplings) if not s.greedy and chosen[i] != FAILED]
    if not sampled:
        return chosen
    index = torch.tensor(sampled, device=logits.device)
    temperature = torch.tensor([samplings[i].temperature for i in sampled], device=logits.device)
    top_p = torch.tensor([samplings[i].top_p for i in sampled], device=logits.device)
    probs = nucleus(logits[index] / temperature[:, None], top_p).softmax(-1)
    drawable = probs.isfinite().all(-1) & (probs.sum(-1) > 0)
    for row, i in enumerate(sampled):
        if drawable[row]:
            chosen[i] = torch.multinomial(probs[row], 1, generator=generators[i])[0]
        else:
            chosen[i] = FAILED
    return chosen


def usable_scores(logits: torch.Tensor) -> torch.Tensor:
    """Per row: no NaN, no +inf, and at least one finite score (-inf marks a banned token)."""
    return ~(logits.isnan() | (logits == float("inf"))).any(-1) & logits.isfinite().any(-1)
