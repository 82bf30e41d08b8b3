"""The contrast split: the same questions answered by someone other than the persona.

The evaluation's tone readers learn what is *not* the persona from it (tonetune/evaluation/
contrast.py reads ``contrast_<split>.jsonl``): the teacher answers the dataset's questions in a
few other persona cards (``contrast.personas``, the run's own skipped), and plainly, as a neutral
assistant, in about N words, N the persona's typical length (``contrast.plain_words``; by default
the median word count of the kept persona answers). Each answer passes filters like the persona's
(the other card's length and markers; for plain answers a length near N and none of the persona's
required markers) and goes through the teacher's client: cached, so a killed run resumes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from tonetune.config import CONFIG_DIR, typed
from tonetune.errors import ConfigError
from tonetune.llm.client import LLMClient
from tonetune.llm.requests import ChatRequest
from tonetune.persona import required_markers, word_count
from tonetune.schemas import PersonaConfig
from tonetune.synthesis.answers import Asked, ask_until_kept, persona_messages
from tonetune.synthesis.filters import AnswerFilter, count_reasons
from tonetune.synthesis.settings import AnswerSettings, ContrastSettings, FilterSettings

PLAIN = "plain"
PLAIN_SYSTEM = (
    "You are a helpful, neutral assistant. Answer the question plainly and directly in about {n} "
    "words: no persona, no role-play, no jokes, no emojis, no hashtags, no preamble."
)


def load_persona(name: str) -> PersonaConfig:
    """The persona card ``conf/persona/<name>.yaml``, typed (its Hydra ``defaults`` list ignored)."""
    path = CONFIG_DIR / "persona" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise ConfigError(f"contrast.personas: no persona card {name!r} in {path.parent} (there: {known})")
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    return typed(PersonaConfig, node)


def contrast_personas(settings: ContrastSettings, persona: PersonaConfig) -> list[PersonaConfig]:
    """The cards named in ``contrast.personas``, the run's own persona left out."""
    return [load_persona(name) for name in dict.fromkeys(settings.personas) if name != persona.name]


def typical_length(rows: list[dict[str, Any]], persona: PersonaConfig) -> tuple[int, str]:
    """N for the plain answers, and where it came from (the kept answers' median, or the card)."""
    answers = [m["content"] for r in rows for m in r["messages"][1:2] if m["role"] == "assistant"]
    if answers:
        return max(1, round(statistics.median(word_count(a) for a in answers))), "median of kept answers"
    return (persona.min_words + persona.max_words) // 2, "midpoint of the card's min/max words"


@dataclass
class Voice:
    """Who answers in the contrast split: a request builder and the filter its answers pass."""

    name: str
    system: PersonaConfig
    check: AnswerFilter
    forbidden: dict[str, Any]
    """Markers an answer must not carry (the run persona's, for plain answers)."""

    def reason(self, text: str, finish_reason: str) -> str | None:
        """Why an answer is rejected, or None."""
        if (why := self.check.reason(text, finish_reason)) is not None:
            return why
        return "persona_marker" if any(rx.search(text) for rx in self.forbidden.values()) else None


def plain_card(persona: PersonaConfig, words: int) -> PersonaConfig:
    """A card for the neutral assistant: no markers, about ``words`` words (half to one and a half)."""
    return PersonaConfig(
        name=PLAIN,
        display_name="A plain assistant",
        description="Plain, neutral answers.",
        system_prompt=PLAIN_SYSTEM.format(n=words),
        min_words=max(1, round(words * 0.5)),
        max_words=max(2, round(words * 1.5)),
        language=persona.language,
    )


def voices(
    persona: PersonaConfig,
    others: list[PersonaConfig],
    settings: ContrastSettings,
    words: int,
    filters: FilterSettings,
) -> list[Voice]:
    """The other personas (their own filters), then the plain assistant (forbidden the persona's markers)."""
    options = dict(vars(filters))
    found = [Voice(o.name, o, AnswerFilter(o, **options), {}) for o in others]
    if settings.plain:
        card = plain_card(persona, words)
        found.append(Voice(PLAIN, card, AnswerFilter(card, **options), required_markers(persona)))
    return found


def contrast_request(
    voice: Voice, question: str, attempt: int, answers: AnswerSettings, max_tokens: int
) -> ChatRequest:
    """One contrast answer: the other card's instructions (and examples), or the plain prompt alone."""
    history = [{"role": "user", "content": question}]
    if voice.name == PLAIN:
        messages = [{"role": "system", "content": voice.system.system_prompt}, *history]
    else:
        messages = persona_messages(voice.system, history, answers.few_shot)
    return ChatRequest.of(messages, temperature=answers.temperature, max_tokens=max_tokens, seed=attempt)


def contrast_questions(rows: list[dict[str, Any]], settings: ContrastSettings) -> list[tuple[str, str, str]]:
    """(question, category, split) of each first turn, once each, in ``contrast.splits``, capped per split."""
    found: dict[str, tuple[str, str, str]] = {}
    per_split: dict[str, int] = {}
    for row in rows:
        question, split = row["question"], row["split"]
        if question in found or split not in settings.splits:
            continue
        if settings.max_questions is not None and per_split.get(split, 0) >= settings.max_questions:
            continue
        per_split[split] = per_split.get(split, 0) + 1
        found[question] = (question, row.get("category", ""), split)
    return list(found.values())


def collect_contrast(
    teacher: LLMClient,
    persona: PersonaConfig,
    others: list[PersonaConfig],
    rows: list[dict[str, Any]],
    settings: ContrastSettings,
    answers: AnswerSettings,
    filters: FilterSettings,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Contrast rows (``question``, ``answer``, ``persona``, ``category``, ``split``) and their counts."""
    words, words_from = (
        (settings.plain_words, "contrast.plain_words")
        if settings.plain_words
        else typical_length(rows, persona)
    )
    questions = contrast_questions(rows, settings)
    speakers = voices(persona, others, settings, words, filters)
    jobs = [(v, q) for v in speakers for q in questions]
    asked = ask_until_kept(
        teacher,
        len(jobs),
        lambda job, a: contrast_request(jobs[job][0], jobs[job][1][0], a, answers, settings.max_tokens),
        lambda job, text, finish: jobs[job][0].reason(text, finish),
        answers.max_attempts,
        answers.candidates,
        "Contrast answers",
    )
    found = [
        {"question": q, "answer": asked.kept[j][0], "persona": v.name, "category": c, "split": s}
        for j, (v, (q, c, s)) in enumerate(jobs)
        if j in asked.kept
    ]
    report = {
        "questions": len(questions),
        "plain_words": words if settings.plain else None,
        "plain_words_from": words_from if settings.plain else None,
        "rows": {v.name: sum(r["persona"] == v.name for r in found) for v in speakers},
        "rejected": {v.name: _rejected(asked, jobs, v.name) for v in speakers},
        "requested": asked.requests,
        **asked.cost(answers.candidates),
    }
    return found, report


def _rejected(asked: Asked, jobs: list[tuple[Voice, Any]], name: str) -> dict[str, int]:
    """Rejection reasons of one voice's candidates."""
    return count_reasons([why for job, why in asked.reasons if jobs[job][0].name == name])


def contrast_files(found: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``contrast_<split>.jsonl`` contents, rows carrying their ``split``."""
    files: dict[str, list[dict[str, Any]]] = {}
    for row in found:
        files.setdefault(f"contrast_{row['split']}.jsonl", []).append(row)
    return files
