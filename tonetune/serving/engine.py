"""Streaming, batched generation for the server and the terminal chat.

A batch of prompts is generated together (left padding, KV cache); after every decoding step
each request receives the text its new token added, until its end-of-turn token or its limit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from queue import Queue
from typing import Any

import torch
from transformers import GenerationConfig
from transformers.generation.streamers import BaseStreamer

from tonetune.generation import render_prompts, stop_token_ids


class PromptTooLongError(ValueError):
    """A prompt that leaves no room for an answer in the model's context."""


@dataclass
class Request:
    """One chat request, tokenized."""

    input_ids: list[int]
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0


@dataclass
class Progress:
    """What one request has produced so far."""

    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None


class _StepStreamer(BaseStreamer):
    """Receives each decoding step's tokens (one per row) from ``generate`` in another thread."""

    def __init__(self) -> None:
        self.steps: Queue = Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        """The first call carries the prompt; later ones one new token per row."""
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.steps.put(value.reshape(-1).tolist())

    def end(self) -> None:
        """Generation finished (or failed)."""
        self.steps.put(None)


class Engine:
    """A causal LM and its tokenizer, ready to answer chats."""

    def __init__(self, model: Any, tokenizer: Any, max_context: int | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.stops = set(stop_token_ids(model, tokenizer))
        self.max_context = max_context or getattr(model.config, "max_position_embeddings", 2048)

    def tokenize(self, messages: list[dict[str, str]]) -> list[int]:
        """Chat template + generation prompt; raises PromptTooLongError when nothing fits after it."""
        text = render_prompts(self.tokenizer, [messages])[0]
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= self.max_context:
            raise PromptTooLongError(
                f"the prompt is {len(ids)} tokens; this model's context is {self.max_context} tokens"
            )
        return ids

    def stream(self, requests: Sequence[Request]) -> Iterator[list[str]]:
        """Yield, after each decoding step, the new text of every request ('' when it has none).

        When the iterator is exhausted, ``self.last`` holds each request's Progress.
        """
        progress = [Progress() for _ in requests]
        self.last = progress
        for request in requests:  # no room left in the context: stop at once
            request.max_new_tokens = min(request.max_new_tokens, self.max_context - len(request.input_ids))
        streamer = _StepStreamer()
        failure: list[BaseException] = []
        worker = threading.Thread(target=self._generate, args=(requests, streamer, failure), daemon=True)
        worker.start()
        while (step := streamer.steps.get()) is not None:
            yield [self._advance(p, r, token) for p, r, token in zip(progress, requests, step, strict=True)]
        worker.join()
        if failure:
            raise failure[0]
        for p in progress:
            p.finish_reason = p.finish_reason or "length"

    def _advance(self, progress: Progress, request: Request, token: int) -> str:
        if progress.finish_reason is not None:
            return ""
        if token in self.stops:
            progress.finish_reason = "stop"
            return ""
        progress.tokens.append(token)
        text = self.tokenizer.decode(progress.tokens, skip_special_tokens=True)
        done = len(progress.tokens) >= request.max_new_tokens
        if done:
            progress.finish_reason = "length"
        if text.endswith("\ufffd") and not done:  # half of a multi-byte character: wait for the rest
            return ""
        delta, progress.text = text[len(progress.text) :], text
        return delta

    @torch.inference_mode()
    def _generate(
        self, requests: Sequence[Request], streamer: _StepStreamer, failure: list[BaseException]
    ) -> None:
        try:
            pad = self.tokenizer.pad_token_id
            width = max(len(r.input_ids) for r in requests)
            ids = torch.tensor([[pad] * (width - len(r.input_ids)) + r.input_ids for r in requests])
            mask = torch.tensor([[0] * (width - len(r.input_ids)) + [1] * len(r.input_ids) for r in requests])
            first = requests[0]  # a batch shares the first request's sampling settings
            sampling = (
                {"temperature": first.temperature, "top_p": first.top_p} if first.temperature > 0 else {}
            )
            config = GenerationConfig(
                max_new_tokens=max(max(r.max_new_tokens for r in requests), 1),
                do_sample=first.temperature > 0,
                eos_token_id=sorted(self.stops),
                pad_token_id=pad,
                **sampling,
            )
            self.model.generate(
                input_ids=ids.to(self.model.device),
                attention_mask=mask.to(self.model.device),
                generation_config=config,
                streamer=streamer,
            )
        except BaseException as err:  # surfaced by stream() in the caller's thread
            failure.append(err)
        finally:
            streamer.end()
