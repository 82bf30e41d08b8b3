"""Persona answers: the teacher answers each question in the persona's voice; filters keep the good ones."""

from __future__ import annotations

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


def collect_answers(
    teacher: LLMClient,
    persona: PersonaConfig,
    questions: list[Question],
    settings: AnswerSettings,
    check: AnswerFilter,
) -> Answered:
    """Persona answers; a rejected answer is asked again, up to ``answers.max_attempts`` times."""
    pending = [(q, sample) for q in questions for sample in range(settings.per_question)]
    result, reasons = Answered(), []
    for attempt in range(settings.max_attempts):
        if not pending:
            break
        requests = [
            answer_request(persona, [{"role": "user", "content": q.text}], sample, attempt, settings)
            for q, sample in pending
        ]
        replies = teacher.complete(requests, desc=f"Answers (attempt {attempt + 1})")
        retry = []
        for (question, sample), reply in zip(pending, replies, strict=True):
            answer = reply.text.strip()
            reason = check.reason(answer, reply.finish_reason)
            reasons.append(reason)
            if reason is None:
                result.rows.append(
                    {
                        "question": question.text,
                        "answer": answer,
                        "category": question.category,
                        "sample": sample,
                    }
                )
                continue
            retry.append((question, sample))
            if answer:
                result.rejected.setdefault(question.text, []).append(answer)
        pending = retry
    answered = {row["question"] for row in result.rows}
    result.report = {
        "requested": len(reasons),
        "kept": len(result.rows),
        "rejected": count_reasons(reasons),
        "questions_without_answer": sum(q.text not in answered for q in questions),
    }
    return result
