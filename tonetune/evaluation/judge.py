"""LLM judge: pairwise preferences and a persona fidelity score.

Each pair is judged in both orders (judges favour a position) and ties are allowed; the 1-10
fidelity score comes after the judge's reasoning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tonetune.persona import persona_instructions
from tonetune.synthesis.requests import ChatRequest
from tonetune.synthesis.teachers import Teacher

PAIRWISE_SYSTEM = (
    "You judge which of two answers better speaks in a given persona's voice while still answering the "
    "question. Think first, then decide. Reply with JSON: "
    '{"reasoning": "<one or two sentences>", "winner": "A" | "B" | "tie"}'
)
FIDELITY_SYSTEM = (
    "You rate how faithfully an answer speaks in a given persona's voice while answering the question. "
    "First write your reasoning in one or two sentences, then end with a line 'Score: N' where N is "
    "an integer from 1 (not the persona at all) to 10 (unmistakably the persona)."
)
_WINNER = re.compile(r'"?winner"?\s*[:=]\s*"?\s*(A|B|tie)\b', re.IGNORECASE)
_LAST_WORD = re.compile(r"\b(A|B|tie)\W*$", re.IGNORECASE)
_SCORE = re.compile(r"score\s*[:=]?\s*(\d{1,2})(?:\s*/\s*10)?", re.IGNORECASE)


def parse_verdict(text: str) -> str | None:
    """``A``, ``B`` or ``tie`` from a judge's reply (JSON or prose); None if unreadable."""
    try:
        data = json.loads(text.strip().removeprefix("```json").removesuffix("```"))
        winner = str(data.get("winner", "")).strip() if isinstance(data, dict) else ""
    except json.JSONDecodeError:
        match = _WINNER.search(text) or _LAST_WORD.search(text.strip())
        winner = match.group(1) if match else ""
    normalised = {"a": "A", "b": "B", "tie": "tie"}.get(winner.lower())
    return normalised


def parse_score(text: str) -> int | None:
    """The 1-10 score at the end of a fidelity reply; None if missing or out of range."""
    matches = _SCORE.findall(text)
    if not matches:
        return None
    score = int(matches[-1])
    return score if 1 <= score <= 10 else None


def combine(first: str | None, swapped: str | None) -> str:
    """Outcome for the candidate, judged as A then as B: ``win``, ``loss``, ``tie`` or ``invalid``.

    A preference counts only if it survives swapping the order; otherwise it is a tie.
    """
    if first is None or swapped is None:
        return "invalid"
    as_a = {"A": "win", "B": "loss", "tie": "tie"}[first]
    as_b = {"B": "win", "A": "loss", "tie": "tie"}[swapped]
    return as_a if as_a == as_b else "tie"


@dataclass
class PairwiseResult:
    """Counts of outcomes for the candidate against one opponent."""

    outcomes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Counts, and the win rate counting a tie as half."""
        counts = {k: self.outcomes.count(k) for k in ("win", "loss", "tie", "invalid")}
        valid = counts["win"] + counts["loss"] + counts["tie"]
        rate = (counts["win"] + 0.5 * counts["tie"]) / valid if valid else 0.0
        return {**counts, "win_rate": rate}


def _persona_brief(persona: Any) -> str:
    return f"Persona:\n{persona_instructions(persona)}"


def pairwise_requests(persona: Any, question: str, candidate: str, opponent: str) -> list[ChatRequest]:
    """The candidate as A against the opponent as B, then the order swapped."""

    def ask(a: str, b: str) -> ChatRequest:
        user = f"{_persona_brief(persona)}\n\nQuestion: {question}\n\nAnswer A: {a}\n\nAnswer B: {b}"
        return ChatRequest.of(
            [{"role": "system", "content": PAIRWISE_SYSTEM}, {"role": "user", "content": user}],
            temperature=0.0,
            max_tokens=200,
            json_mode=True,
        )

    return [ask(candidate, opponent), ask(opponent, candidate)]


def fidelity_request(persona: Any, question: str, answer: str) -> ChatRequest:
    """Ask for reasoning, then a 1-10 persona fidelity score."""
    user = f"{_persona_brief(persona)}\n\nQuestion: {question}\n\nAnswer: {answer}"
    return ChatRequest.of(
        [{"role": "system", "content": FIDELITY_SYSTEM}, {"role": "user", "content": user}],
        temperature=0.0,
        max_tokens=200,
    )


def judge_pairwise(
    judge: Teacher,
    persona: Any,
    questions: Sequence[str],
    candidate: Sequence[str],
    opponent: Sequence[str],
    desc: str,
) -> PairwiseResult:
    """Judge the candidate's answers against the opponent's, each pair in both orders."""
    requests = [
        r
        for q, c, o in zip(questions, candidate, opponent, strict=True)
        for r in pairwise_requests(persona, q, c, o)
    ]
    replies = judge.complete(requests, desc=desc)
    verdicts = [parse_verdict(r.text) for r in replies]
    return PairwiseResult([combine(verdicts[i], verdicts[i + 1]) for i in range(0, len(verdicts), 2)])


def judge_fidelity(
    judge: Teacher, persona: Any, questions: Sequence[str], answers: Sequence[str], desc: str
) -> dict[str, float]:
    """Mean 1-10 fidelity score and how many replies had no readable score."""
    replies = judge.complete(
        [fidelity_request(persona, q, a) for q, a in zip(questions, answers, strict=True)], desc=desc
    )
    scores = [parse_score(r.text) for r in replies]
    valid = [s for s in scores if s is not None]
    return {
        "fidelity": sum(valid) / len(valid) if valid else 0.0,
        "fidelity_invalid": len(scores) - len(valid),
    }
