"""Persona cards: the prompts built from them and the markers that recognise their tone."""

from __future__ import annotations

import re
from typing import Any

from tonetune.models import as_dict


def persona_instructions(persona: Any) -> str:
    """The full instructions for a general model: system prompt, style rules and length range."""
    card = as_dict(persona)
    lines = [card["system_prompt"].strip()]
    if card.get("style_rules"):
        lines.append("Style rules:")
        lines.extend(f"- {rule}" for rule in card["style_rules"])
    lines.append(f"Answer in {card['min_words']} to {card['max_words']} words.")
    lines.append("Stay in character; never mention being an AI.")
    return "\n".join(lines)


def compiled_markers(persona: Any) -> dict[str, re.Pattern[str]]:
    """The persona's tone markers as case-insensitive regexes, by name."""
    return {m["name"]: re.compile(m["pattern"], re.IGNORECASE) for m in as_dict(persona).get("markers", [])}


def word_count(text: str) -> int:
    """Whitespace-separated words (emojis and hashtags count as words, as a reader would count them)."""
    return len(text.split())


def within_length(text: str, persona: Any) -> bool:
    """Whether ``text`` has between the persona's ``min_words`` and ``max_words`` words."""
    card = as_dict(persona)
    return card["min_words"] <= word_count(text) <= card["max_words"]
