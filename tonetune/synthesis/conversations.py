"""Multi-turn conversations: the persona's answers from the teacher, the user's follow-ups too.

The follow-ups come from the teacher unless another LLM is named for them (``follow_up_writer``).
A share of the answered questions is extended turn by turn: first the user's next message, one
that refers to the last answer ("why?", an example, a disagreement, a change of topic), then the
persona answers it, the answer passing the same filters as every other and not
echoing the follow-up or an earlier answer (asked again up to ``max_attempts`` times). Every
request is cached, so a killed run resumes.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from tonetune.llm.client import LLMClient
from tonetune.llm.requests import ChatRequest, ChatResult
from tonetune.schemas import PersonaConfig
from tonetune.synthesis.answers import answer_request
from tonetune.synthesis.filters import AnswerFilter, echoes
from tonetune.synthesis.settings import AnswerSettings, ConversationSettings

FOLLOW_UP_SYSTEM = (
    "You write the next message of a person chatting with {name}. Read the conversation, then write "
    "the person's next message: a short reply to the last answer that asks why, asks for an example, "
    "disagrees, or changes the topic. Write only the message, in one or two sentences."
)
_QUOTES = "\"'“”‘’ "
_LABEL = re.compile(r"^\s*(user|person|me|next message|conversation)\s*:\s*", re.IGNORECASE)


@dataclass
class Extension:
    """What extending the conversations did, for the dataset card."""

    extended: int = 0
    turns_added: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def report(self) -> dict[str, int]:
        """Counts by stage."""
        return {"extended": self.extended, "turns_added": self.turns_added, **self.counts}


def follow_up_request(
    persona: PersonaConfig, history: list[dict[str, str]], key: int, attempt: int, temperature: float
) -> ChatRequest:
    """Ask for the user's next message after ``history``."""
    transcript = "\n".join(
        f"{'Person' if m['role'] == 'user' else persona.display_name}: {m['content']}" for m in history
    )
    return ChatRequest.of(
        [
            {"role": "system", "content": FOLLOW_UP_SYSTEM.format(name=persona.display_name)},
            {"role": "user", "content": f"Conversation:\n{transcript}\n\nThe person's next message:"},
        ],
        temperature=temperature,
        max_tokens=48,
        seed=10_000 * key + attempt,
    )


def clean_follow_up(text: str) -> str | None:
    """The follow-up message from the writer's reply, or None when it is not one (empty, too long)."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line).strip(_QUOTES)
    return line if 1 <= len(line.split()) <= 40 and not line.lower().startswith("as an ai") else None


@dataclass
class ConversationWriters:
    """Who writes each side: the persona's answers (the teacher) and the user's follow-ups."""

    persona: LLMClient
    user: LLMClient


def extend_conversations(
    writers: ConversationWriters,
    persona: PersonaConfig,
    rows: list[dict[str, Any]],
    settings: ConversationSettings,
    answers: AnswerSettings,
    check: AnswerFilter,
    seed: int,
) -> Extension:
    """Extend ``settings.share`` of ``rows`` (their ``messages`` change in place) to ``settings.turns``."""
    extension = Extension(counts={"follow_ups_rejected": 0, "answers_rejected": 0, "answers_echoing": 0})
    chosen = [i for i in range(len(rows)) if random.Random(seed + i).random() < settings.share]
    alive = list(chosen)
    for turn in range(1, settings.turns):
        alive = _next_turn(writers, persona, rows, alive, turn, settings, answers, check, extension)
        if not alive:
            break
    extension.extended = sum(len(rows[i]["messages"]) > 2 for i in chosen)
    return extension


def _next_turn(
    writers: ConversationWriters,
    persona: PersonaConfig,
    rows: list[dict[str, Any]],
    alive: list[int],
    turn: int,
    settings: ConversationSettings,
    answers: AnswerSettings,
    check: AnswerFilter,
    extension: Extension,
) -> list[int]:
    """One more user message and persona answer for each conversation in ``alive``; who is still alive."""
    follow_ups = _follow_ups(writers.user, persona, rows, alive, turn, settings, extension)
    pending = list(follow_ups)
    done: dict[int, str] = {}
    for attempt in range(settings.max_attempts):
        if not pending:
            break
        requests = [
            answer_request(
                persona,
                [*rows[i]["messages"], {"role": "user", "content": follow_ups[i]}],
                sample=1000 * turn + i,
                attempt=attempt,
                settings=answers,
            )
            for i in pending
        ]
        replies = writers.persona.complete(requests, desc=f"Turn {turn + 1} answers (attempt {attempt + 1})")
        retry = []
        for i, reply in zip(pending, replies, strict=True):
            rejection = _rejection(reply, follow_ups[i], rows[i]["messages"], settings, check)
            if rejection is None:
                done[i] = reply.text.strip()
            else:
                extension.counts[rejection] += 1
                retry.append(i)
        pending = retry
    for i, answer in done.items():
        rows[i]["messages"] += [
            {"role": "user", "content": follow_ups[i]},
            {"role": "assistant", "content": answer},
        ]
    extension.turns_added += len(done)
    return [i for i in alive if i in done]


def _rejection(
    reply: ChatResult,
    follow_up: str,
    history: list[dict[str, str]],
    settings: ConversationSettings,
    check: AnswerFilter,
) -> str | None:
    """Which count a follow-up answer goes to when it is not kept (failing a filter, echoing), or None."""
    answer = reply.text.strip()
    if check.reason(answer, reply.finish_reason) is not None:
        return "answers_rejected"
    earlier = [follow_up, *(m["content"] for m in history if m["role"] == "assistant")]
    if echoes(answer, earlier, settings.max_echo_similarity):
        return "answers_echoing"
    return None


def _follow_ups(
    writer: LLMClient,
    persona: PersonaConfig,
    rows: list[dict[str, Any]],
    alive: list[int],
    turn: int,
    settings: ConversationSettings,
    extension: Extension,
) -> dict[int, str]:
    """The user's next message for each conversation (asked again up to ``max_attempts`` times)."""
    found: dict[int, str] = {}
    pending = list(alive)
    for attempt in range(settings.max_attempts):
        if not pending:
            break
        requests = [
            follow_up_request(persona, rows[i]["messages"], 1000 * turn + i, attempt, settings.temperature)
            for i in pending
        ]
        replies = writer.complete(requests, desc=f"Turn {turn + 1} follow-ups (attempt {attempt + 1})")
        retry = []
        for i, reply in zip(pending, replies, strict=True):
            message = clean_follow_up(reply.text)
            if message is None:
                extension.counts["follow_ups_rejected"] += 1
                retry.append(i)
            else:
                found[i] = message
        pending = retry
    return found
