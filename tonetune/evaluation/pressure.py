"""Persona under pressure: instructions and system prompts that pull a model out of its persona.

Every contestant answers the same questions wrapped in each probe ("Answer plainly in one
sentence, no jokes:", a neutral system prompt, ...); the persona share that survives is measured
per probe and over all probes (Open Character Training measures robustness this way).
"""

from __future__ import annotations

from typing import Any

from tonetune import stats
from tonetune.evaluation.answering import AnswerPool, Ticket
from tonetune.evaluation.contestants import Contestant
from tonetune.evaluation.registry import names
from tonetune.evaluation.scoring import ToneReader, compare, summarise
from tonetune.generation.sampling import Sampling
from tonetune.persona import Messages
from tonetune.schemas import PressureProbe


def probe_messages(probe: PressureProbe, question: str) -> Messages:
    """The user message the probe makes of ``question``, after its system prompt when it has one."""
    user = {"role": "user", "content": probe.template.format(question=question)}
    return [{"role": "system", "content": probe.system}, user] if probe.system else [user]


def ask_pressure(
    pool: AnswerPool,
    contestants: list[Contestant],
    questions: list[str],
    probes: list[PressureProbe],
    sampling: Sampling,
) -> tuple[list[Messages], dict[str, Ticket]]:
    """Queue every (probe, question) for every contestant; the conversations and each one's ticket."""
    conversations = [probe_messages(p, q) for p in probes for q in questions]
    return conversations, {c.name: pool.ask(c.name, conversations, sampling) for c in contestants}


def pressure_report(
    pool: AnswerPool,
    asked: tuple[list[Messages], dict[str, Ticket]],
    questions: list[str],
    probes: list[PressureProbe],
    tone: ToneReader,
    candidate: str,
) -> dict[str, Any]:
    """Persona shares per probe and over all probes, with intervals, and the candidate's differences."""
    conversations, tickets = asked
    answers = {name: pool.answers(ticket).texts for name, ticket in tickets.items()}
    per_answer = {
        name: {k: v for k, v in tone.read(texts).items() if k in names(pressure=True)}
        for name, texts in answers.items()
    }
    n = len(questions)
    indices = stats.resample_indices(len(conversations))
    by_probe = {
        name: {
            probe.name: {k: stats.mean(v[i * n : (i + 1) * n]).as_dict() for k, v in values.items()}
            for i, probe in enumerate(probes)
        }
        for name, values in per_answer.items()
    }
    metrics, intervals = summarise(per_answer, indices)
    return {
        "questions": n,
        "probes": [p.name for p in probes],
        "by_probe": by_probe,
        "metrics": metrics,
        "intervals": intervals,
        "differences": compare(per_answer, candidate, indices),
        "answers": {"conversations": conversations, "by_contestant": answers},
    }
