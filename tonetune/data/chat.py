"""Turn conversations into training tensors with the tokenizer's own chat template.

Only the assistant's tokens are trained, including its end-of-turn token, so the model learns
what to say and when to stop; everything else (system, user, template scaffolding) is -100.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from tonetune.models.loss import IGNORE_INDEX


def assistant_char_spans(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]
) -> tuple[str, list]:
    """Render ``messages`` and return the text plus the character spans of each assistant turn.

    A span starts after the generation prompt (``<|im_start|>assistant`` and its newline, or the template's
    equivalent) and ends where the next turn would start, so it holds the end-of-turn token.
    """
    render = tokenizer.apply_chat_template
    text = render(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(messages[:i], tokenize=False, add_generation_prompt=True)
        upto = render(messages[: i + 1], tokenize=False)
        if not (text.startswith(upto) and upto.startswith(prompt)):
            raise ValueError(
                f"the chat template of {tokenizer.name_or_path} does not render conversations as prefixes "
                "of each other; cannot locate the assistant's tokens"
            )
        spans.append((len(prompt), len(upto)))
    return text, spans


def tokenize_conversation(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], max_length: int
) -> dict[str, Any]:
    """input_ids, attention_mask and labels (assistant tokens only) for one conversation."""
    text, spans = assistant_char_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = [
        token if any(start <= begin < end for start, end in spans) else IGNORE_INDEX
        for token, (begin, _) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
    ]
    return {
        "input_ids": encoded["input_ids"][:max_length],
        "attention_mask": encoded["attention_mask"][:max_length],
        "labels": labels[:max_length],
        "truncated": len(labels) > max_length,
    }
