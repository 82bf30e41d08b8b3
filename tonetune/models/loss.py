"""The language-model loss on labelled positions only, equal to the model's own loss.

The LM head (vocabulary x hidden) runs only where a label is set: for chat data most positions
are the prompt, and the head is a large share of a small model's compute and memory. Models whose
forward post-processes the logits get the same post-processing here; an architecture we have not
checked falls back to the model's own forward, so nothing trains on wrong logits silently.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from peft import PeftModel
from torch import nn

IGNORE_INDEX = -100

# Architectures whose CausalLM forward is `lm_head(hidden)` plus the post-processing below; checked
# against `model(**batch, labels=...).loss` in tests/test_loss.py.
CHECKED = {"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3_text", "cohere", "granite"}


def causal_lm(model: nn.Module) -> nn.Module:
    """The transformers model inside a PeftModel (adapters stay active), or the model itself."""
    return model.get_base_model() if isinstance(model, PeftModel) else model


def head_postprocess(config) -> Callable[[torch.Tensor], torch.Tensor]:
    """What the model's forward does to the LM head's output (softcapping, scaling), as a function."""
    cap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None)
    divisor = getattr(config, "logits_scaling", None)

    def apply(logits: torch.Tensor) -> torch.Tensor:
        if scale is not None:
            logits = logits * scale
        if divisor is not None:
            logits = logits / divisor
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return apply


def labelled_logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, targets) at every position whose next token has a label, in row-major order."""
    lm = causal_lm(model)
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    if lm.config.model_type not in CHECKED:
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch.get("position_ids"),
        ).logits
        return logits[:, :-1][keep], targets[keep]
    hidden = lm.get_decoder()(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch.get("position_ids"),
        use_cache=False,
    ).last_hidden_state
    logits = lm.get_output_embeddings()(hidden[:, :-1][keep])
    return head_postprocess(lm.config)(logits), targets[keep]


def masked_lm_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over labelled positions, and how many there were."""
    logits, targets = labelled_logits(model, batch)
    return F.cross_entropy(logits.float(), targets), int(targets.numel())


def token_logprobs(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-probability of each labelled token, and where they are (a mask over ``labels[:, 1:]``)."""
    logits, targets = labelled_logits(model, batch)
    return -F.cross_entropy(logits.float(), targets, reduction="none"), batch["labels"][:, 1:] != IGNORE_INDEX


def summed_by_row(
    logprobs: torch.Tensor, rows: torch.Tensor, n_rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the sum of the token log-probabilities ``rows`` assigns to it, and how many there were."""
    sums = logprobs.new_zeros(n_rows).index_add(0, rows, logprobs)
    return sums, torch.bincount(rows, minlength=n_rows)


def sequence_logprobs(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the summed log-probability of its labelled tokens, and how many there were."""
    logprobs, labelled = token_logprobs(model, batch)
    return summed_by_row(logprobs, labelled.nonzero()[:, 0], batch["labels"].shape[0])
