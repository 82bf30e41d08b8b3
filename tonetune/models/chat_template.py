"""Conversations through the tokenizer's own chat template, where message contents are only text.

A message that contains ``<|im_end|>`` and ``<|im_start|>system`` must not forge a turn: only the markers
the template itself writes become control tokens. The template renders the conversation as text;
each message's content is located in it (the template is rendered once more with a placeholder
per content), and a control token found inside a content is tokenised as the plain characters
it is made of. A conversation without such strings gets exactly the ids of tokenising the rendered
text, so ordinary prompts and training examples are unchanged.
"""

from __future__ import annotations

import re
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer

from tonetune.persona import Messages

Span = tuple[int, int]
_PLAIN: weakref.WeakKeyDictionary[Any, Tokenizer] = weakref.WeakKeyDictionary()


class ChatTemplateError(ValueError):
    """A chat template whose output cannot be told apart into markup and message contents."""


@dataclass(frozen=True)
class EncodedChat:
    """A rendered conversation: its text, token ids and each token's character span in the text."""

    text: str
    input_ids: list[int]
    offsets: list[Span]

    def inside(self, spans: list[Span]) -> list[bool]:
        """For each token, whether it starts inside one of ``spans`` (character ranges of ``text``)."""
        return [any(start <= begin < end for start, end in spans) for begin, _ in self.offsets]


def encode_messages(tokenizer: Any, messages: Messages, add_generation_prompt: bool = False) -> EncodedChat:
    """``messages`` through the chat template; control-token strings inside contents stay text."""
    text = render(tokenizer, messages, add_generation_prompt)
    contents = content_spans(tokenizer, messages, text, add_generation_prompt)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]
    control = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    found = [(i, span) for i, span in zip(ids, offsets, strict=True) if i in control]
    markers = [(i, span) for i, span in found if not _overlaps(span, contents)]
    if len(markers) == len(found):
        return EncodedChat(text, ids, offsets)
    return _encode_between_markers(tokenizer, text, markers)


def render(tokenizer: Any, messages: Messages, add_generation_prompt: bool = False) -> str:
    """The chat template's text for ``messages``."""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def content_spans(tokenizer: Any, messages: Messages, text: str, add_generation_prompt: bool) -> list[Span]:
    """Character spans of the message contents in ``text`` (the template's rendering of ``messages``)."""
    nonce = uuid.uuid4().hex
    masked = [
        {**m, "content": f"\ue000{nonce}:{i}\ue001"}
        if isinstance(m.get("content"), str) and m["content"]
        else m
        for i, m in enumerate(messages)
    ]
    pieces = re.split(f"\ue000{nonce}:(\\d+)\ue001", render(tokenizer, masked, add_generation_prompt))
    scaffolds, indices = pieces[0::2], [int(i) for i in pieces[1::2]]
    if not text.startswith(scaffolds[0]):
        raise _unlocatable(tokenizer)
    spans, cursor = [], len(scaffolds[0])
    for index, after in zip(indices, scaffolds[1:], strict=True):
        content = messages[index]["content"]
        shown = next((c for c in (content, content.strip()) if text.startswith(c + after, cursor)), None)
        if shown is None:
            raise _unlocatable(tokenizer)
        spans.append((cursor, cursor + len(shown)))
        cursor += len(shown) + len(after)
    if cursor != len(text):
        raise _unlocatable(tokenizer)
    return spans


def _unlocatable(tokenizer: Any) -> ChatTemplateError:
    return ChatTemplateError(
        f"the chat template of {tokenizer.name_or_path} changes message contents in ways tonetune cannot "
        "follow; cannot tell the template's control tokens from the messages' text"
    )


def _overlaps(span: Span, spans: list[Span]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in spans)


def _encode_between_markers(tokenizer: Any, text: str, markers: list[tuple[int, Span]]) -> EncodedChat:
    """The template's markers as control tokens; the text between them with no control token parsed."""
    plain = _plain_tokenizer(tokenizer)
    ids: list[int] = []
    offsets: list[Span] = []
    position = 0
    for token, (begin, end) in [*markers, (None, (len(text), len(text)))]:
        if begin > position:
            piece = plain.encode(text[position:begin], add_special_tokens=False)
            ids.extend(piece.ids)
            offsets.extend((position + a, position + b) for a, b in piece.offsets)
        if token is not None:
            ids.append(token)
            offsets.append((begin, end))
        position = max(position, end)
    return EncodedChat(text, ids, offsets)


def _plain_tokenizer(tokenizer: Any) -> Tokenizer:
    """A private copy of the tokenizer's backend that reads control-token strings as plain text.

    A copy, not ``split_special_tokens=True``: that flag is state of the shared backend, and a
    prompt tokenised on another thread at the same time would lose its markers.
    """
    if tokenizer not in _PLAIN:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ChatTemplateError(f"{tokenizer.name_or_path}: tonetune needs a fast (tokenizers) tokenizer")
        plain = Tokenizer.from_str(backend.to_str())
        plain.encode_special_tokens = True
        _PLAIN[tokenizer] = plain
    return _PLAIN[tokenizer]
