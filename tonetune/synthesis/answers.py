"""Persona answers: the teacher answers each question in the persona's voice; filters keep the good ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tonetune.data.question_lists import Question
from tonetune.llm.client import LLMClient
from tonetune.llm.requests import ChatRequest, Messages
from tonetune.persona import persona_instructions
from tonetune.schemas import PersonaConfig
from tonetune.synthesis.filters import AnswerFilter, count_reasons
from tonetune.synthesis.settings import AnswerSettings


@dataclass
class Answered:
    """The kept answers, and every teacher answer the filters rejected (the preference split's extras)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, list[str]] = field(default_factory=dict)
    """Question -> the teacher's answers that failed a filter (non-empty ones only)."""
    report: dict[str, Any] = field(default_factory=dict)


def persona_messages(persona: PersonaConfig, history: Messages, few_shot: bool = True) -> Messages:
    """System prompt with the card's rules, the card's examples as earlier turns, then the conversation."""
    messages = [{"role": "system", "content": persona_instructions(persona)}]
    if few_shot:
        for example in persona.few_shot:
            messages.append({"role": "user", "content": example.question})
            messages.append({"role": "assistant", "content": example.answer})
    return messages + list(history)


def answer_request(
    persona: PersonaConfig, history: Messages, sample: int, attempt: int, settings: AnswerSettings
) -> ChatRequest:
    """One answer request; ``sample`` and ``attempt`` make repeated asks distinct requests."""
    return ChatRequest.of(
        persona_messages(persona, history, settings.few_shot),
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        seed=1000 * sample + attempt,
    )


@dataclass
class Asked:
    """What asking for candidates until one passes gave: kept answers, rejections and their cost."""

    kept: dict[int, tuple[str, int]] = field(default_factory=dict)
    """Job -> (the first passing candidate, the round it came in, from 1)."""
    rejected: dict[int, list[str]] = field(default_factory=dict)
    """Job -> non-empty candidates that failed before one passed (all of them when none did)."""
    reasons: list[tuple[int, str]] = field(default_factory=list)
    """(job, why) for each rejected candidate."""
    requests: int = 0
    rounds: int = 0
    by_round: list[int] = field(default_factory=list)
    """Requests sent in each round."""
    spare: int = 0
    """Candidates never checked: an earlier one of the same round passed."""
    completion_tokens: int = 0

    def cost(self, candidates: int) -> dict[str, Any]:
        """Requests, decode rounds and completion tokens per kept answer (for the dataset card)."""
        kept = max(len(self.kept), 1)
        return {
            "candidates": candidates,
            "rounds": self.rounds,
            "requests_by_round": list(self.by_round),
            "spare_candidates": self.spare,
            "requests_per_kept": round(self.requests / kept, 3),
            "rounds_per_kept": round(sum(r for _, r in self.kept.values()) / kept, 3),
            "completion_tokens_per_kept": round(self.completion_tokens / kept, 1),
        }


RequestFor = Callable[[int, int], ChatRequest]
"""(job, attempt) -> the request; attempts count candidates, so each one has its own seed."""
ReasonOf = Callable[[int, str, str], "str | None"]
"""(job, text, finish_reason) -> why the candidate is rejected, or None."""


def ask_until_kept(
    teacher: LLMClient,
    jobs: int,
    request_for: RequestFor,
    reason_of: ReasonOf,
    max_attempts: int,
    candidates: int,
    desc: str,
) -> Asked:
    """Ask ``jobs`` until each has a candidate that passes ``reason_of``, keeping the first in seed order.

    Each round sends ``candidates`` requests per pending job at once (one ``complete`` call: one
    batched decode, or concurrent API requests). Later rounds only for jobs with no passing
    candidate, up to ``max_attempts`` candidates in all.
    """
    asked, pending, attempt = Asked(), list(range(jobs)), 0
    while pending and attempt < max_attempts:
        k = min(candidates, max_attempts - attempt)
        sent = [(job, attempt + c) for job in pending for c in range(k)]
        replies = teacher.complete(
            [request_for(job, a) for job, a in sent], desc=f"{desc} (round {asked.rounds + 1})"
        )
        asked.rounds += 1
        asked.requests += len(sent)
        asked.by_round.append(len(sent))
        for (job, _), reply in zip(sent, replies, strict=True):
            asked.completion_tokens += reply.completion_tokens
            if job in asked.kept:
                asked.spare += 1
                continue
            text = reply.text.strip()
            reason = reason_of(job, text, reply.finish_reason)
            if reason is None:
                asked.kept[job] = (text, asked.rounds)
                continue
            asked.reasons.append((job, reason))
            if text:
                asked.rejected.setdefault(job, []).append(text)
        pending = [job for job in pending if job not in asked.kept]
        attempt += k
    return asked


def collect_answers(
    teacher: LLMClient,
    persona: PersonaConfig,
    questions: list[Question],
    settings: AnswerSettings,
    check: AnswerFilter,
) -> Answered:
    """Persona answers: ``answers.candidates`` per round, up to ``answers.max_attempts`` in all."""
    jobs = [(q, sample) for q in questions for sample in range(settings.per_question)]

    def request_for(job: int, attempt: int) -> ChatRequest:
        question, sample = jobs[job]
        history = [{"role": "user", "content": question.text}]
        return answer_request(persona, history, sample, attempt, settings)

    asked = ask_until_kept(
        teacher,
        len(jobs),
        request_for,
        lambda _job, text, finish: check.reason(text, finish),
        settings.max_attempts,
        settings.candidates,
        "Answers",
    )
    result = Answered()
    for job in sorted(asked.kept, key=lambda j: (asked.kept[j][1], j)):  # by round, as asked
        (question, sample), answer = jobs[job], asked.kept[job][0]
        result.rows.append(
            {"question": question.text, "answer": answer, "category": question.category, "sample": sample}
        )
    for job, texts in sorted(asked.rejected.items()):
        result.rejected.setdefault(jobs[job][0].text, []).extend(texts)
    answered = {row["question"] for row in result.rows}
    result.report = {
        "requested": asked.requests,
        "kept": len(result.rows),
        "rejected": count_reasons([why for _, why in asked.reasons]),
        "questions_without_answer": sum(q.text not in answered for q in questions),
        **asked.cost(settings.candidates),
    }
    return result
