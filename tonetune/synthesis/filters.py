"""Quality filters for teacher answers; each rejection is counted by reason."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from tonetune.persona import required_markers, within_length
from tonetune.schemas import PersonaConfig

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

    persona: PersonaConfig
    empty: bool = True
    refusal: bool = True
    unparseable: bool = True
    truncated: bool = True
    length: bool = True
    markers: bool = True
    refusal_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_REFUSALS))

    def __post_init__(self) -> None:
        self._refusals = [re.compile(p, re.IGNORECASE) for p in self.refusal_patterns]
        self._required = required_markers(self.persona)

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
        if self.length and not within_length(text, self.persona):
            return "length"
        if self.markers:
            for name, rx in self._required.items():
                if not rx.search(text):
                    return f"missing_{name}"
        return None


def count_reasons(reasons: list[str | None]) -> dict[str, int]:
    """Rejections by reason (accepted answers not counted)."""
    return dict(Counter(r for r in reasons if r))


def echoes(text: str, earlier: list[str], max_similarity: float) -> bool:
    """Whether ``text`` (nearly) repeats one of ``earlier`` (the user's message, earlier answers).

    Similarity is difflib's ratio of the lower-cased texts: 1.0 for a copy, about 0.3 for two
    answers of one persona to different questions. Training on echoes teaches repeating oneself.
    """
    return any(SequenceMatcher(None, text.lower(), e.lower()).ratio() > max_similarity for e in earlier)
