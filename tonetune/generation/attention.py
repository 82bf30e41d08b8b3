"""Grouped-query attention for decoding without copying the keys and values.

transformers' ``sdpa`` attention on a CPU repeats every key and value head once per query head of its
group (``repeat_kv``) whenever it is given a mask, which is always in a left-padded batch: SmolLM2-135M's
3 key/value heads become 9 copies at every layer of every prefill. Here the same
``scaled_dot_product_attention`` is called with ``enable_gqa`` instead, which reads each key/value
head in place. In float32 the answers are the same token for token (tests/test_decode_path.py).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

GROUPED_SDPA = "tonetune_grouped_sdpa"


def grouped_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``sdpa`` attention with the key/value heads shared by their query group, not repeated.

    A soft cap or a position bias (arguments this form does not apply) goes to transformers' own.
    """
    if kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None:
        options = {"dropout": dropout, "scaling": scaling, "is_causal": is_causal, **kwargs}
        return sdpa_attention_forward(module, query, key, value, attention_mask, **options)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    output = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=bool(causal and attention_mask is None and query.shape[2] > 1),
        enable_gqa=getattr(module, "num_key_value_groups", 1) > 1,
    )
    return output.transpose(1, 2).contiguous(), None


AttentionInterface.register(GROUPED_SDPA, grouped_sdpa_attention)
AttentionMaskInterface.register(GROUPED_SDPA, sdpa_mask)


def use_grouped_attention(model: Any) -> None:
    """Switch ``model`` (or a PeftModel's base) from transformers' ``sdpa`` to the grouped variant.

    Models on another implementation (eager, flash attention) keep it.
    """
    config = model.config
    if getattr(config, "_attn_implementation", None) == "sdpa":
        config._attn_implementation = GROUPED_SDPA
