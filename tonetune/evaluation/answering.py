"""Answering an evaluation's conversations in as few batches as possible.

Every section (question sets, pressure probes, a multi-turn round) asks its conversations first;
then the contestants that share weights and adapter (the base with and without the persona prompt)
are answered together, every conversation keeping its own system prompt and sampling. Bigger
batches of similar length are what makes a CPU evaluation fast: decoding reads every weight once
per step, whatever the batch size.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from tonetune.evaluation.contestants import Answers, Contestant, LocalContestant, chat_request
from tonetune.generation.sampling import Sampling
from tonetune.llm.local import LocalClient
from tonetune.persona import Messages, with_system_prompt


@dataclass
class Ticket:
    """Where one request's answers will be: a contestant and a range of its queue."""

    contestant: str
    start: int
    stop: int


@dataclass
class _Queue:
    conversations: list[Messages] = field(default_factory=list)
    samplings: list[Sampling] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)


class AnswerPool:
    """Collects conversations per contestant, answers them together, hands the answers back.

    Args:
        contestants: Who answers.
        batch_size: Answers decoded together.
        base: The base model as a cached LLM client: its answers do not depend on the run evaluated,
            so a sweep or a second evaluation of the same base asks it nothing twice.
    """

    def __init__(
        self, contestants: list[Contestant], batch_size: int, base: LocalClient | None = None
    ) -> None:
        self.contestants = {c.name: c for c in contestants}
        self.batch_size = batch_size
        self.base = base
        self.queues: dict[str, _Queue] = defaultdict(_Queue)

    def ask(self, contestant: str, conversations: list[Messages], sampling: Sampling) -> Ticket:
        """Queue ``conversations`` for ``contestant``; the ticket fetches the answers after ``run``."""
        queue = self.queues[contestant]
        start = len(queue.conversations)
        queue.conversations.extend(conversations)
        queue.samplings.extend([sampling] * len(conversations))
        return Ticket(contestant, start, len(queue.conversations))

    def run(self) -> None:
        """Answer everything queued and not answered yet."""
        groups: dict[tuple, list[str]] = defaultdict(list)
        for name, queue in self.queues.items():
            if len(queue.texts) < len(queue.conversations):
                groups[_batch_key(self.contestants[name])].append(name)
        for names in groups.values():
            self._answer(names)

    def _answer_cached(
        self,
        pending: list[tuple[str, int]],
        conversations: list[Messages],
        samplings: list[Sampling],
        label: str,
    ) -> None:
        results = self.base.complete(
            [chat_request(c, s) for c, s in zip(conversations, samplings, strict=True)],
            desc=f"Answers: {label}",
        )
        for (name, _), result in zip(pending, results, strict=True):
            self.queues[name].texts.append(result.text.strip())
            self.queues[name].finish_reasons.append(result.finish_reason)

    def answers(self, ticket: Ticket) -> Answers:
        """The answers of one ``ask``."""
        queue = self.queues[ticket.contestant]
        return Answers(
            queue.texts[ticket.start : ticket.stop], queue.finish_reasons[ticket.start : ticket.stop]
        )

    def _answer(self, names: list[str]) -> None:
        pending = [
            (name, i)
            for name in names
            for i in range(len(self.queues[name].texts), len(self.queues[name].conversations))
        ]
        first = self.contestants[names[0]]
        if not isinstance(first, LocalContestant):
            queue = self.queues[first.name]
            start = len(queue.texts)
            done = first.answer(queue.conversations[start:], queue.samplings[start:], self.batch_size)
            queue.texts += done.texts
            queue.finish_reasons += done.finish_reasons
            return
        conversations = [
            with_system_prompt(self.queues[n].conversations[i], self.contestants[n].system_prompt)
            for n, i in pending
        ]
        samplings = [self.queues[n].samplings[i] for n, i in pending]
        label = " + ".join(names)
        if self.base is not None and (first.engine, first.adapter) == (self.base.engine(), self.base.adapter):
            self._answer_cached(pending, conversations, samplings, label)
            return
        done = first.engine.chat(
            conversations,
            samplings,
            adapter=first.adapter,
            batch_size=self.batch_size,
            desc=f"Answers: {label}",
        )
        for (name, _), completion in zip(pending, done, strict=True):
            self.queues[name].texts.append(completion.text)
            self.queues[name].finish_reasons.append(completion.finish_reason)


def _batch_key(contestant: Contestant) -> tuple | str:
    """Contestants answered in one batch: the same engine and adapter (an endpoint: alone)."""
    if not isinstance(contestant, LocalContestant):
        return contestant.name
    return (id(contestant.engine), contestant.adapter)
