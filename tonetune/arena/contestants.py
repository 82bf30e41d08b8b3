"""Who answers in the arena: runs, the base with or without the persona prompt, and endpoints.

They are the evaluation's contestants (one abstraction): runs share one base (an adapter each) and
stream token by token; endpoints stream through the LLM client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from tonetune.errors import ConfigError
from tonetune.evaluation.contestants import Contestant, EndpointContestant, LocalContestant
from tonetune.generation.engine import BASE, Engine
from tonetune.generation.sampling import Sampling
from tonetune.llm.client import LLMClient
from tonetune.persona import Messages, persona_instructions
from tonetune.serving.served import Served

Stream = Callable[[Messages], Iterator[str]]


@dataclass
class ArenaContestant:
    """A name and how it answers (yielding its text as it grows)."""

    name: str
    stream: Stream


def arena_contestants(
    served: Served,
    base: Engine | None,
    persona: Any,
    names: list[str],
    endpoints: dict[str, LLMClient],
    sampling: Sampling,
) -> list[ArenaContestant]:
    """``names`` as contestants: a served run id (or alias), ``base``, ``base_prompted``, or an endpoint."""
    by_name = {name: _contestant(name, served, base, persona, endpoints) for name in names}
    return [ArenaContestant(name, partial(c.stream, sampling=sampling)) for name, c in by_name.items()]


def _contestant(
    name: str, served: Served, base: Engine | None, persona: Any, endpoints: dict[str, LLMClient]
) -> Contestant:
    prompt = persona_instructions(persona)
    if name in endpoints:
        return EndpointContestant(name, endpoints[name], prompt)
    if name in {"base", "base_prompted"}:
        engine, adapter = (base, None) if base is not None else (served.engine, BASE)
        return LocalContestant(name, engine, adapter, prompt if name == "base_prompted" else None)
    if (model := served.find(name)) is not None:
        return LocalContestant(name, served.engine, model.adapter, model.system_prompt)
    aliases = [a for m in served.models.values() for a in m.aliases]
    known = [*served.models, *aliases, "base", "base_prompted", *endpoints]
    raise ConfigError(f"contestants: {name!r} is not one of {known}")
