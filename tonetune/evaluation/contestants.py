"""Contestants: who answers the evaluation's conversations.

Local contestants share one engine: for an adapter run, the base model and the fine-tuned model
are the same weights with the adapter off (``BASE``) or on. An endpoint contestant is any
OpenAI-compatible server behind the LLM client layer (its answers cached). The evaluation asks them
in batches (``answer``); the arena streams one answer at a time (``stream``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tonetune.generation.engine import Engine, GenerationRequest
from tonetune.generation.sampling import Sampling
from tonetune.llm.client import LLMClient
from tonetune.llm.requests import ChatRequest
from tonetune.persona import Messages, with_system_prompt


@dataclass
class Answers:
    """One contestant's answers, in conversation order."""

    texts: list[str]
    finish_reasons: list[str]


@dataclass
class LocalContestant:
    """A model in this process (an adapter of the shared engine, or its base)."""

    name: str
    engine: Engine
    adapter: str | None = None
    system_prompt: str | None = None

    def answer(
        self, conversations: Sequence[Messages], sampling: Sampling | Sequence[Sampling], batch_size: int
    ) -> Answers:
        """Batched generation on the engine (one sampling, or one per conversation); keeps stop reasons."""
        done = self.engine.chat(
            [with_system_prompt(c, self.system_prompt) for c in conversations],
            sampling,
            adapter=self.adapter,
            batch_size=batch_size,
            desc=f"Answers: {self.name}",
        )
        return Answers([c.text for c in done], [c.finish_reason for c in done])

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        """One answer token by token (the arena's page), holding the shared engine's lock."""
        with self.engine.lock:
            prompt = self.engine.encode(with_system_prompt(messages, self.system_prompt))
            for deltas in self.engine.stream([GenerationRequest(prompt, sampling, self.adapter)]):
                yield from (delta.text for delta in deltas)

    @contextlib.contextmanager
    def active(self) -> Iterator[Any]:
        """The model with this contestant's adapter set (for scoring texts under it)."""
        with self.engine.using(self.adapter):
            yield self.engine.model


@dataclass
class EndpointContestant:
    """A model behind an OpenAI-compatible endpoint."""

    name: str
    client: LLMClient
    system_prompt: str | None = None

    def answer(
        self, conversations: Sequence[Messages], sampling: Sampling | Sequence[Sampling], batch_size: int
    ) -> Answers:
        """One request per conversation, each with its own sampling, exactly as a local contestant's."""
        samplings = [sampling] * len(conversations) if isinstance(sampling, Sampling) else list(sampling)
        requests = [
            chat_request(with_system_prompt(c, self.system_prompt), s)
            for c, s in zip(conversations, samplings, strict=True)
        ]
        results = self.client.complete(requests, desc=f"Answers: {self.name}")
        return Answers([r.text.strip() for r in results], [r.finish_reason for r in results])

    def stream(self, messages: Messages, sampling: Sampling) -> Iterator[str]:
        """One answer as the endpoint streams it (through the LLM client)."""
        yield from self.client.stream(
            chat_request(with_system_prompt(messages, self.system_prompt), sampling)
        )


def chat_request(conversation: Messages, sampling: Sampling) -> ChatRequest:
    """The chat request that decodes ``conversation`` with every one of ``sampling``'s settings."""
    return ChatRequest.of(conversation, **sampling.request_params())


Contestant = LocalContestant | EndpointContestant
