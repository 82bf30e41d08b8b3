"""Questions: ask the teacher for lists (JSON where it can, any list where not), or read them from files."""

from __future__ import annotations

import re

from tonetune.llm.replies import extract_json
from tonetune.llm.requests import ChatRequest

JSON_INSTRUCTIONS = 'Reply with a JSON object {"questions": ["...", "..."]} and nothing else.'
LIST_INSTRUCTIONS = "Write one question per line, numbered, and nothing else."
_PREFIX = re.compile(r"^\s*(?:(?:\(?\d+\s*[.)\]:-]|[-*•]|(?:question|q)\s*\d*\s*[:.])\s*)+", re.IGNORECASE)
_AFTER_QUESTION_MARK = re.compile(r"(?<=\?)\s+")
MIN_WORDS, MAX_WORDS = 3, 40


def question_request(
    prompt: str,
    count: int,
    known: list[str],
    *,
    seed: int,
    json_mode: bool,
    temperature: float,
    tokens_per_question: int,
) -> ChatRequest:
    """Ask for ``count`` questions unlike the ``known`` ones; ``seed`` tells repeated requests apart."""
    text = prompt.format(n=count)
    if known:
        listed = "\n".join(f"- {q}" for q in known[-40:])
        text += f"\nWrite {count} new questions, different from these:\n{listed}"
    system = JSON_INSTRUCTIONS if json_mode else LIST_INSTRUCTIONS
    return ChatRequest.of(
        [{"role": "system", "content": system}, {"role": "user", "content": text}],
        temperature=temperature,
        max_tokens=64 + tokens_per_question * count,
        seed=seed,
        json_mode=json_mode,
    )


def parse_question_list(text: str) -> list[str]:
    """Questions from a teacher's reply: a JSON list (or object holding one), else question-like text.

    Small models put several numbered questions on one line, or prefix them with "Question:";
    plain text is cut after every question mark and stripped of such marks.
    """
    parsed = _json_list(text)
    if parsed is not None:
        pieces = [str(item) for item in parsed]
    else:
        pieces = [part for line in text.splitlines() for part in _AFTER_QUESTION_MARK.split(line)]
    questions = []
    for piece in pieces:
        question = _PREFIX.sub("", piece).strip().strip('"').strip()
        if MIN_WORDS <= len(question.split()) <= MAX_WORDS and (question.endswith("?") or parsed is not None):
            questions.append(question)
    return questions


def _json_list(text: str) -> list | None:
    data = extract_json(text)
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), None)
    return data if isinstance(data, list) else None
