"""Quality filters for teacher answers; each rejection is counted by reason."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tonetune.persona import compiled_markers, word_count

DEFAULT_REFUSALS = [
    r"\bas an ai\b",
    r"\b(language model|ai assistant|chatbot)\b",
    r"\bi('m| am) (sorry|unable|not able)\b",
    r"\bi (cannot|can't|can not) (help|assist|provide|answer|do that)\b",
    r"\bi don't have (personal|the ability)\b",
]
_MARKUP = re.compile(r"<\|[a-z_]+\|>|^\s*[\[{]|^\s*(system|user|assistant)\s*:", re.IGNORECASE)


@dataclass
class AnswerFilter:
    """Which checks run, with the persona's length range and required markers."""

    persona: Any
    empty: bool = True
    refusal: bool = True
    unparseable: bool = True
    truncated: bool = True
    length: bool = True
    markers: bool = True
    refusal_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_REFUSALS))

    def __post_init__(self) -> None:
        self._refusals = [re.compile(p, re.IGNORECASE) for p in self.refusal_patterns]
        required = {m["name"] for m in self.persona["markers"] if m.get("required")}
        self._required = {name: rx for name, rx in compiled_markers(self.persona).items() if name in required}

    def reason(self, text: str, finish_reason: str = "stop") -> str | None:
        """Why ``text`` is rejected (``empty``, ``refusal``, ``length``, ``missing_<marker>``...), or None."""
        if self.empty and not text.strip():
            return "empty"
        if self.unparseable and _MARKUP.search(text):
            return "unparseable"
        if self.refusal and any(rx.search(text) for rx in self._refusals):
            return "refusal"
        if self.truncated and finish_reason == "length":
            return "truncated"
        words = word_count(text)
        if self.length and not self.persona["min_words"] <= words <= self.persona["max_words"]:
            return "length"
        if self.markers:
            for name, rx in self._required.items():
                if not rx.search(text):
                    return f"missing_{name}"
        return None


def count_reasons(reasons: list[str | None]) -> dict[str, int]:
    """Rejections by reason (accepted answers not counted)."""
    return dict(Counter(r for r in reasons if r))
