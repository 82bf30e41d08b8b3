"""Persona cards: the prompts built from them and the markers that recognise their tone.

Pure Python on purpose: synthesis filters, evaluation metrics and the arena import it cheaply.
"""

from __future__ import annotations

import re

from tonetune.schemas import PersonaConfig

Messages = list[dict[str, str]]
"""A chat conversation: ``{"role": ..., "content": ...}`` dicts (the one definition)."""


def persona_instructions(persona: PersonaConfig) -> str:
    """The full instructions for a general model: system prompt, style rules and length range."""
    lines = [persona.system_prompt.strip()]
    if persona.style_rules:
        lines.append("Style rules:")
        lines.extend(f"- {rule}" for rule in persona.style_rules)
    lines.append(f"Answer in {persona.min_words} to {persona.max_words} words.")
    lines.append("Stay in character; never mention being an AI.")
    return "\n".join(lines)


def compiled_markers(persona: PersonaConfig) -> dict[str, re.Pattern[str]]:
    """The persona's tone markers as case-insensitive regexes, by name."""
    return {m.name: re.compile(m.pattern, re.IGNORECASE) for m in persona.markers}


def required_markers(persona: PersonaConfig) -> dict[str, re.Pattern[str]]:
    """The markers synthesis insists on (``required: true``)."""
    required = {m.name for m in persona.markers if m.required}
    return {name: rx for name, rx in compiled_markers(persona).items() if name in required}


def strip_markers(text: str, persona: PersonaConfig) -> str:
    """``text`` without any match of the persona's markers (the tone left once emojis and hashtags go)."""
    for rx in compiled_markers(persona).values():
        text = rx.sub(" ", text)
    return " ".join(text.split())


def word_count(text: str) -> int:
    """Whitespace-separated words (emojis and hashtags count as words, as a reader would count them)."""
    return len(text.split())


def within_length(text: str, persona: PersonaConfig) -> bool:
    """Whether ``text`` has between the persona's ``min_words`` and ``max_words`` words."""
    return persona.min_words <= word_count(text) <= persona.max_words


def with_system_prompt(messages: Messages, system_prompt: str | None) -> Messages:
    """Prepend ``system_prompt`` unless it is empty or the conversation already has a system message."""
    if not system_prompt or (messages and messages[0]["role"] == "system"):
        return list(messages)
    return [{"role": "system", "content": system_prompt}, *messages]


def single_turn(question: str, system_prompt: str | None = None) -> Messages:
    """A one-question conversation, with the system prompt when there is one."""
    return with_system_prompt([{"role": "user", "content": question}], system_prompt)
