"""Contestants: who answers the evaluation questions.

The base model with and without the persona prompt, the fine-tuned run, and optionally a
(larger) reference model behind any OpenAI-compatible endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tonetune.generation import Generation, Sampling, generate_chat
from tonetune.synthesis.requests import ChatRequest
from tonetune.synthesis.teachers import Teacher


@dataclass
class Answers:
    """One contestant's answers, in question order."""

    texts: list[str]
    finish_reasons: list[str]


def chats(questions: Sequence[str], system_prompt: str | None) -> list[list[dict[str, str]]]:
    """One single-turn conversation per question, with the system prompt when there is one."""
    prefix = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [[*prefix, {"role": "user", "content": q}] for q in questions]


@dataclass
class LocalContestant:
    """A transformers model in this process (base or fine-tuned)."""

    name: str
    model: Any
    tokenizer: Any
    system_prompt: str | None = None

    def answer(self, questions: Sequence[str], sampling: Sampling, batch_size: int) -> Answers:
        """Batched generation; keeps each answer's stop reason."""
        generations: list[Generation] = generate_chat(
            self.model,
            self.tokenizer,
            chats(questions, self.system_prompt),
            sampling,
            batch_size,
            desc=f"Answers: {self.name}",
        )
        return Answers([g.text for g in generations], [g.finish_reason for g in generations])


@dataclass
class EndpointContestant:
    """A model behind an OpenAI-compatible endpoint (answers cached like teacher requests)."""

    name: str
    client: Teacher
    system_prompt: str | None = None

    def answer(self, questions: Sequence[str], sampling: Sampling, batch_size: int) -> Answers:
        """One request per question with the same sampling settings as the local contestants."""
        temperature = sampling.temperature if sampling.do_sample else 0.0
        requests = [
            ChatRequest.of(
                chat, temperature=temperature, max_tokens=sampling.max_new_tokens, seed=sampling.seed
            )
            for chat in chats(questions, self.system_prompt)
        ]
        results = self.client.complete(requests, desc=f"Answers: {self.name}")
        return Answers([r.text.strip() for r in results], [r.finish_reason for r in results])
