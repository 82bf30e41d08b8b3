"""Who answers in the arena: runs, the base with or without the persona prompt, and endpoints.

Runs share one base (an adapter each); local answers stream token by token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tonetune.generation.engine import BASE, Engine, GenerationRequest
from tonetune.generation.sampling import Sampling
from tonetune.llm.openai_api import OpenAIClient
from tonetune.persona import Messages, persona_instructions, with_system_prompt
from tonetune.serving.loading import Served

Stream = Callable[[Messages], Iterator[str]]


@dataclass
class ArenaContestant:
    """A name and how it answers (yielding its text as it grows)."""

    name: str
    stream: Stream


def local_stream(
    engine: Engine, adapter: str | None, system_prompt: str | None, sampling: Sampling, lock: threading.Lock
) -> Stream:
    """Answers from the shared engine (one request at a time: the arena's page asks in turn)."""

    def answer(messages: Messages) -> Iterator[str]:
        with lock:
            request = GenerationRequest(
                engine.encode(with_system_prompt(messages, system_prompt)), sampling, adapter
            )
            for deltas in engine.stream([request]):
                for delta in deltas:
                    yield delta.text

    return answer


def endpoint_stream(client: OpenAIClient, system_prompt: str | None, sampling: Sampling) -> Stream:
    """Answers from an OpenAI-compatible server, streamed through the official client."""

    def answer(messages: Messages) -> Iterator[str]:
        from openai import OpenAI

        api = OpenAI(**client.client_options())
        chunks = api.chat.completions.create(
            model=client.model,
            messages=with_system_prompt(messages, system_prompt),
            stream=True,
            temperature=sampling.temperature,
            max_tokens=sampling.max_new_tokens,
        )
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    return answer


def build_contestants(
    served: Served,
    base: Engine | None,
    persona: Any,
    names: list[str],
    endpoints: dict[str, OpenAIClient],
    sampling: Sampling,
) -> list[ArenaContestant]:
    """``names`` as contestants: a served run id (or alias), ``base``, ``base_prompted``, or an endpoint."""
    lock = threading.Lock()
    prompt = persona_instructions(persona)
    engine_of_base = base or served.engine
    adapter_of_base = None if base is not None else BASE
    contestants = []
    for name in names:
        if name in endpoints:
            contestants.append(ArenaContestant(name, endpoint_stream(endpoints[name], prompt, sampling)))
        elif name in {"base", "base_prompted"}:
            system = prompt if name == "base_prompted" else None
            contestants.append(
                ArenaContestant(name, local_stream(engine_of_base, adapter_of_base, system, sampling, lock))
            )
        elif (model := served.find(name)) is not None:
            stream = local_stream(served.engine, model.adapter, model.system_prompt, sampling, lock)
            contestants.append(ArenaContestant(name, stream))
        else:
            known = [
                *served.models,
                *(a for m in served.models.values() for a in m.aliases),
                "base",
                "base_prompted",
                *endpoints,
            ]
            from tonetune.errors import ConfigError

            raise ConfigError(f"contestants: {name!r} is not one of {known}")
    return contestants
