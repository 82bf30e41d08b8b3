"""Choosing each row's next token with that row's own settings: penalty, temperature, top-p, seed."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tonetune.generation.sampling import Sampling


def penalise_repetition(logits: torch.Tensor, seen: torch.Tensor, penalties: torch.Tensor) -> torch.Tensor:
    """Transformers' repetition penalty, every row at once with its own penalty.

    Seen tokens' scores are divided (or, if negative, multiplied) by the row's penalty; ``seen`` holds
    each row's prompt and answer so far (B x L; a shorter row repeats one of its own tokens, never
    padding, and a token seen twice is penalised once). A penalty of 1.0 leaves the row as it is.
    """
    scores = logits.gather(1, seen)
    penalty = penalties[:, None]
    scores = torch.where(scores < 0, scores * penalty, scores / penalty)
    return logits.scatter(1, seen, scores)


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
    seen: torch.Tensor,
    samplings: Sequence[Sampling],
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """One token per row: argmax for greedy rows, a draw from the row's own generator otherwise.

    The penalty reads each row's own tokens (``seen``, see ``penalise_repetition``); temperature and
    top-p are applied to all sampled rows at once (one sort), and every sampled row draws from its own
    seeded generator. A row whose scores or probabilities are not finite gets ``FAILED``, alone: the
    rows beside it are unaffected.
    """
    logits = logits.float()
    penalties = [s.repetition_penalty for s in samplings]
    if any(p != 1.0 for p in penalties):
        logits = penalise_repetition(logits, seen, logits.new_tensor(penalties))
    best, chosen = logits.max(-1)  # one pass for both (argmax and amax apart took about 3x as long)
    chosen = chosen.masked_fill(~usable_scores(best), FAILED)
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


def usable_scores(best: torch.Tensor) -> torch.Tensor:
    """Per row, from its best score: no NaN, no +inf, and at least one finite score (-inf bans a token).

    A row's maximum is NaN if it holds a NaN, +inf if it holds +inf, -inf if all its scores are.
    """
    return best.isfinite()
