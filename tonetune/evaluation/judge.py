"""LLM judge: pairwise preferences and a persona fidelity score, with the judge's biases measured.

Each pair is judged in both orders (judges favour a position): a preference that flips with the
order counts as a tie, and the share of pairs whose verdict survives the swap is reported. The
judge is told to ignore length, and the win rate is also given per length bucket (judges favour
longer answers). A reply without a readable verdict or score is invalid: it is counted and shown,
and a rate with no valid verdict is n/a, never 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tonetune import stats
from tonetune.llm.client import LLMClient
from tonetune.llm.replies import extract_json
from tonetune.llm.requests import ChatRequest
from tonetune.persona import persona_instructions, word_count
from tonetune.schemas import PersonaConfig

PAIRWISE_SYSTEM = (
    "You judge which of two answers better speaks in a given persona's voice while still answering the "
    "question. Ignore the answers' length: a short answer can be the better one. Think first, then decide. "
    'Reply with JSON: {"reasoning": "<one or two sentences>", "winner": "A" | "B" | "tie"}'
)
FIDELITY_SYSTEM = (
    "You rate how faithfully an answer speaks in a given persona's voice while answering the question. "
    "First write your reasoning in one or two sentences, then end with a line 'Score: N' where N is "
    "an integer from 1 (not the persona at all) to 10 (unmistakably the persona)."
)
_WINNER = re.compile(r'"?winner"?\s*[:=]\s*"?\s*(A|B|tie)\b', re.IGNORECASE)
_LAST_WORD = re.compile(r"\b(A|B|tie)\W*$", re.IGNORECASE)
_SCORE = re.compile(r"score\s*[:=]?\s*(\d{1,2})(?:\s*/\s*10)?", re.IGNORECASE)
LENGTH_BUCKETS = {"shorter": (0.0, 0.8), "similar": (0.8, 1.25), "longer": (1.25, math.inf)}
POINTS = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def parse_verdict(text: str) -> str | None:
    """``A``, ``B`` or ``tie`` from a judge's reply (JSON or prose); None if unreadable."""
    data = extract_json(text)
    if isinstance(data, dict):
        winner = str(data.get("winner", "")).strip()
    else:
        match = _WINNER.search(text) or _LAST_WORD.search(text.strip())
        winner = match.group(1) if match else ""
    return {"a": "A", "b": "B", "tie": "tie"}.get(winner.lower())


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


def consistent(first: str | None, swapped: str | None) -> bool | None:
    """Whether the verdict survives the swap (None when a reply was unreadable)."""
    if first is None or swapped is None:
        return None
    return {"A": "B", "B": "A", "tie": "tie"}[first] == swapped


@dataclass
class PairwiseResult:
    """Outcomes for the candidate against one opponent, with what the bias checks need."""

    outcomes: list[str] = field(default_factory=list)
    consistency: list[bool | None] = field(default_factory=list)
    length_ratios: list[float] = field(default_factory=list)
    """Candidate words / opponent words, per pair."""

    def summary(self) -> dict[str, Any]:
        """Counts, win rate (a tie is half) with its interval, swap consistency, and length buckets."""
        counts = {k: self.outcomes.count(k) for k in ("win", "loss", "tie", "invalid")}
        valid = [POINTS[o] for o in self.outcomes if o != "invalid"]
        checked = [c for c in self.consistency if c is not None]
        rate = stats.mean(np.array(valid)) if valid else None
        return {
            **counts,
            "win_rate": rate.value if rate else None,
            "win_rate_ci": [rate.low, rate.high] if rate else None,
            "swap_consistency": float(np.mean(checked)) if checked else None,
            "by_length": self._by_length(),
        }

    def _by_length(self) -> dict[str, dict[str, Any]]:
        buckets = {}
        for name, (low, high) in LENGTH_BUCKETS.items():
            points = [
                POINTS[o]
                for o, r in zip(self.outcomes, self.length_ratios, strict=True)
                if o != "invalid" and low <= r < high
            ]
            buckets[name] = {"n": len(points), "win_rate": float(np.mean(points)) if points else None}
        return buckets


def _persona_brief(persona: PersonaConfig) -> str:
    return f"Persona:\n{persona_instructions(persona)}"


def pairwise_requests(
    persona: PersonaConfig, question: str, candidate: str, opponent: str
) -> list[ChatRequest]:
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


def fidelity_request(persona: PersonaConfig, question: str, answer: str) -> ChatRequest:
    """Ask for reasoning, then a 1-10 persona fidelity score."""
    user = f"{_persona_brief(persona)}\n\nQuestion: {question}\n\nAnswer: {answer}"
    return ChatRequest.of(
        [{"role": "system", "content": FIDELITY_SYSTEM}, {"role": "user", "content": user}],
        temperature=0.0,
        max_tokens=200,
    )


def judge_pairwise(
    judge: LLMClient,
    persona: PersonaConfig,
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
    verdicts = [parse_verdict(r.text) for r in judge.complete(requests, desc=desc)]
    pairs = list(zip(verdicts[::2], verdicts[1::2], strict=True))
    return PairwiseResult(
        [combine(a, b) for a, b in pairs],
        [consistent(a, b) for a, b in pairs],
        [word_count(c) / max(word_count(o), 1) for c, o in zip(candidate, opponent, strict=True)],
    )


def judge_fidelity(
    judge: LLMClient, persona: PersonaConfig, questions: Sequence[str], answers: Sequence[str], desc: str
) -> dict[str, Any]:
    """Mean 1-10 fidelity score (None when no reply had a score) and how many replies had none."""
    replies = judge.complete(
        [fidelity_request(persona, q, a) for q, a in zip(questions, answers, strict=True)], desc=desc
    )
    scores = [parse_score(r.text) for r in replies]
    valid = [s for s in scores if s is not None]
    return {
        "fidelity": sum(valid) / len(valid) if valid else None,
        "fidelity_invalid": len(scores) - len(valid),
    }


def run_judge(
    settings: Any, persona: PersonaConfig, questions: list[str], answers: dict[str, Any], cache: Any
) -> dict[str, Any] | None:
    """Pairwise verdicts for the candidate against every other contestant, and fidelity scores (or None)."""
    if not settings.judge:
        return None
    import hydra

    judge = hydra.utils.instantiate(settings.judge, cache=cache, role="evaluation.judge")
    candidate = settings.judge_candidate
    mine = answers[candidate].texts
    pairwise = {
        opponent: judge_pairwise(
            judge, persona, questions, mine, theirs.texts, desc=f"Judge: {candidate} vs {opponent}"
        ).summary()
        for opponent, theirs in answers.items()
        if opponent != candidate
    }
    fidelity = {
        name: judge_fidelity(judge, persona, questions, a.texts, desc=f"Judge: fidelity of {name}")
        for name, a in answers.items()
    }
    return {"model": judge.model, "candidate": candidate, "pairwise": pairwise, "fidelity": fidelity}
