"""Quality filters for teacher answers; each rejection is counted by reason."""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from tonetune.persona import required_markers, within_length
from tonetune.schemas import PersonaConfig

DEFAULT_REFUSALS = [
    r"\bas an ai\b",
    r"\b(language model|ai assistant|chatbot)\b",
    r"\bi('m| am) (sorry|unable|not able)\b",
    r"\bi (cannot|can't|can not) (help|assist|provide|answer|do that)\b",
    r"\bi don't have (personal|the ability)\b",
]
_NOT_PROSE = re.compile(r"[#@]\w+|https?://\S+")
MIN_LETTERS = 15
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
    language: bool = True
    language_confidence: float = 0.8
    """Rejected as ``language`` only when another language is this likely (short replies pass)."""
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
        if self.language and other_language(text, self.persona.language, self.language_confidence):
            return "language"
        if self.markers:
            for name, rx in self._required.items():
                if not rx.search(text):
                    return f"missing_{name}"
        return None


def other_language(text: str, expected: str, confidence: float) -> bool:
    """Whether ``text`` is, with at least ``confidence``, in a language other than ``expected``.

    Hashtags, mentions and links are left out; under ``MIN_LETTERS`` letters nothing is decided.
    """
    words = _NOT_PROSE.sub(" ", text)
    if sum(ch.isalpha() for ch in words) < MIN_LETTERS:
        return False
    language, probability = _identifier().classify(words)
    return language != expected.lower() and probability >= confidence


@functools.cache
def _identifier() -> Any:
    """py3langid's model (shipped inside its wheel: no download), loaded once."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def count_reasons(reasons: list[str | None]) -> dict[str, int]:
    """Rejections by reason (accepted answers not counted)."""
    return dict(Counter(r for r in reasons if r))


def echoes(text: str, earlier: list[str], max_similarity: float) -> bool:
    """Whether ``text`` (nearly) repeats one of ``earlier`` (the user's message, earlier answers).

    Similarity is difflib's ratio of the lower-cased texts: 1.0 for a copy, about 0.3 for two
    answers of one persona to different questions. Training on echoes teaches repeating oneself.
    """
    return any(SequenceMatcher(None, text.lower(), e.lower()).ratio() > max_similarity for e in earlier)
