"""Persona answers: the teacher answers each question in the persona's voice from its card."""

from __future__ import annotations

from typing import Any

from tonetune.models import as_dict
from tonetune.persona import persona_instructions
from tonetune.synthesis.requests import ChatRequest, Messages


def persona_messages(persona: Any, question: str, few_shot: bool = True) -> Messages:
    """System prompt with the card's rules, the card's examples as earlier turns, then the question."""
    card = as_dict(persona)
    messages = [{"role": "system", "content": persona_instructions(card)}]
    if few_shot:
        for example in card.get("few_shot", []):
            messages.append({"role": "user", "content": example["question"]})
            messages.append({"role": "assistant", "content": example["answer"]})
    messages.append({"role": "user", "content": question})
    return messages


def answer_request(
    persona: Any,
    question: str,
    sample: int,
    attempt: int,
    temperature: float,
    max_tokens: int,
    few_shot: bool = True,
) -> ChatRequest:
    """One answer request; ``sample`` and ``attempt`` make repeated asks distinct requests."""
    return ChatRequest.of(
        persona_messages(persona, question, few_shot),
        temperature=temperature,
        max_tokens=max_tokens,
        seed=1000 * sample + attempt,
    )
