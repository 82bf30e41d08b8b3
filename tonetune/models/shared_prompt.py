"""A preference pair scored in one row that holds its prompt once.

A preference batch stacks each pair's two conversations, chosen rows first; both start with the
same prompt tokens. ``share_prompts`` lays each pair out as one row::

    prompt[:-1] | prompt[-1] chosen... | prompt[-1] rejected...

with the rejected part's positions restarting where the prompt ends and a mask that lets each
answer see the prompt and itself, never the other answer. Every labelled token then has the
context, position and so the logit it has in its own row, while the prompt runs once instead of
twice and the padding a short answer got beside a long one is gone. The last prompt token opens
both answer parts because it predicts each answer's first token.

The prompt shared is the leading tokens unlabelled in both rows: in a multi-turn prompt whose
earlier assistant turns carry labels, the part after the first of them is run in both parts. A
shared row is up to twice as wide as a stacked one, so attention (quadratic in the width) does
more work per row, half of it masked; on CPU at the lengths measured, the projections the rows
no longer repeat outweigh it (docs/BENCHMARKS.md, DPO).
"""

from __future__ import annotations

import torch
from torch import nn

from tonetune.models.loss import (
    CHECKED,
    IGNORE_INDEX,
    causal_lm,
    sequence_logprobs,
    summed_by_row,
    token_logprobs,
)

MASKABLE_ATTENTION = {"sdpa"}
"""Attention implementations that take a 4D boolean mask as it is (eager adds masks: it needs floats)."""
PROMPT, CHOSEN, REJECTED, PADDING = 0, 1, 2, -1


def pair_logprobs(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``sequence_logprobs`` of a stacked (chosen; rejected) batch, each prompt run once if it can be."""
    width = batch["input_ids"].shape[1]
    shared = share_prompts(batch) if can_share(causal_lm(model).config, width) else None
    if shared is None:
        return sequence_logprobs(model, batch)
    logprobs, labelled = token_logprobs(model, shared)
    return summed_by_row(logprobs, shared["owner"][:, 1:][labelled], batch["input_ids"].shape[0])


def can_share(config, width: int) -> bool:
    """Whether the model takes the shared layout of a batch ``width`` tokens wide as it is.

    That needs a checked architecture, an attention that takes a 4D mask, and no sliding window
    shorter than the batch (the 4D mask replaces the window's). Otherwise the pair's two rows are scored.
    """
    window = getattr(config, "sliding_window", None)
    return (
        config.model_type in CHECKED
        and config._attn_implementation in MASKABLE_ATTENTION
        and (not window or width <= window)
    )


def shared_prefix_length(ids_a: list[int], labels_a: list[int], ids_b: list[int], labels_b: list[int]) -> int:
    """How many leading tokens two conversations share, unlabelled in both (their common prompt)."""
    length = 0
    for a, la, b, lb in zip(ids_a, labels_a, ids_b, labels_b, strict=False):
        if a != b or la != IGNORE_INDEX or lb != IGNORE_INDEX:
            break
        length += 1
    return length


def share_prompts(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """One row per pair of a stacked (chosen; rejected) batch, or None when a pair shares no prompt.

    Returns ``input_ids``, ``labels``, ``position_ids``, a 4D boolean ``attention_mask`` (True:
    may attend) and ``owner``: for each position, the stacked row its label belongs to (-1: none).
    """
    pairs = batch["input_ids"].shape[0] // 2
    rows = _unpadded(*(batch[key].cpu() for key in ("input_ids", "attention_mask", "labels")))
    layouts = []
    for i in range(pairs):
        (chosen_ids, chosen_labels), (rejected_ids, rejected_labels) = rows[i], rows[i + pairs]
        shared = shared_prefix_length(chosen_ids, chosen_labels, rejected_ids, rejected_labels)
        if shared == 0:
            return None
        start = shared - 1
        layouts.append(
            {
                "input_ids": chosen_ids + rejected_ids[start:],
                "labels": chosen_labels + rejected_labels[start:],
                "position_ids": list(range(len(chosen_ids))) + list(range(start, len(rejected_ids))),
                "segment": [PROMPT] * start
                + [CHOSEN] * (len(chosen_ids) - start)
                + [REJECTED] * (len(rejected_ids) - start),
            }
        )
    return _stack(layouts, batch["input_ids"].device)


def _unpadded(
    ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
) -> list[tuple[list[int], list[int]]]:
    """Each row's token ids and labels where its attention mask is set (left or right padding)."""
    keep = mask.bool()
    return [(ids[i][keep[i]].tolist(), labels[i][keep[i]].tolist()) for i in range(ids.shape[0])]


def _stack(layouts: list[dict[str, list[int]]], device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad the rows to one width; the owners and the mask follow from their segments."""
    width = max(len(layout["input_ids"]) for layout in layouts)
    fill = {"input_ids": 0, "labels": IGNORE_INDEX, "position_ids": 0, "segment": PADDING}
    out = {
        key: torch.tensor(
            [layout[key] + [value] * (width - len(layout[key])) for layout in layouts], device=device
        )
        for key, value in fill.items()
    }
    segment = out.pop("segment")
    pair = torch.arange(len(layouts), device=device)[:, None]
    out["owner"] = torch.where(
        segment == CHOSEN, pair, torch.where(segment == REJECTED, pair + len(layouts), -1)
    )
    query, key = segment[:, :, None], segment[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
    visible = causal & ((key == PROMPT) | (key == query)) & (key != PADDING)
    # A padding position attends to itself only, so no attention row is empty.
    visible |= torch.eye(width, dtype=torch.bool, device=device)
    out["attention_mask"] = visible[:, None]
    return out
