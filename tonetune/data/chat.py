"""Turn conversations into training tensors with the tokenizer's own chat template.

Only the assistant's tokens are trained, including its end-of-turn token, so the model learns
what to say and when to stop; everything else (system, user, template scaffolding) is -100.
A control-token string inside a message (``<|im_end|>`` in an answer) is trained as the text it is
(``tonetune.models.chat_template``), never as a turn marker.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from tonetune.models.chat_template import encode_messages, render
from tonetune.models.loss import IGNORE_INDEX


def assistant_char_spans(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> list:
    """The character spans of each assistant turn in the template's rendering of ``messages``.

    A span starts after the generation prompt (``<|im_start|>assistant`` and its newline, or the template's
    equivalent) and ends where the next turn would start, so it holds the end-of-turn token.
    """
    text = render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(tokenizer, messages[:i], add_generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1])
        if not (text.startswith(upto) and upto.startswith(prompt)):
            raise ValueError(
                f"the chat template of {tokenizer.name_or_path} does not render conversations as prefixes "
                "of each other; cannot locate the assistant's tokens"
            )
        spans.append((len(prompt), len(upto)))
    return spans


def tokenize_conversation(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], max_length: int
) -> dict[str, Any]:
    """input_ids, attention_mask and labels (assistant tokens only) for one conversation."""
    encoded = encode_messages(tokenizer, messages)
    trained = encoded.inside(assistant_char_spans(tokenizer, messages))
    labels = [token if keep else IGNORE_INDEX for token, keep in zip(encoded.input_ids, trained, strict=True)]
    return {
        "input_ids": encoded.input_ids[:max_length],
        "attention_mask": [1] * min(len(labels), max_length),
        "labels": labels[:max_length],
        "truncated": len(labels) > max_length,
    }
