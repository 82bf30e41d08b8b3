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


def nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Logits outside the smallest set whose probability reaches ``top_p`` set to -inf (one row)."""
    if top_p >= 1.0:
        return logits
    ordered, order = torch.sort(logits, descending=False)
    cumulative = ordered.softmax(-1).cumsum(-1)
    drop = cumulative <= 1 - top_p
    drop[-1] = False  # always keep the most likely token
    return logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))


def next_tokens(
    logits: torch.Tensor,
    histories: Sequence[torch.Tensor],
    samplings: Sequence[Sampling],
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """One token per row: argmax for greedy rows, a draw from the row's own generator otherwise."""
    chosen = []
    for row, sampling, history, generator in zip(
        logits.float(), samplings, histories, generators, strict=True
    ):
        row = penalise_repetition(row, history, sampling.repetition_penalty)
        if sampling.greedy:
            chosen.append(row.argmax())
            continue
        row = nucleus(row / sampling.temperature, sampling.top_p)
        chosen.append(torch.multinomial(row.softmax(-1), 1, generator=generator)[0])
    return torch.stack(chosen)
