"""Multi-turn drift: does the persona last a conversation, and does the model follow it?

Each contestant holds conversations of several user turns (a question, then follow-ups from a
fixed set: "Why?", "Give me an example", a disagreement, ...), answering its own earlier turns.
Per turn: the persona share, and the share of answers that repeat the previous answer word for
word (a model that cannot follow a conversation repeats itself).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tonetune import stats
from tonetune.evaluation import metrics as m
from tonetune.evaluation.answering import AnswerPool, Ticket
from tonetune.evaluation.contestants import Contestant
from tonetune.evaluation.registry import names
from tonetune.evaluation.scoring import ToneReader, compare, summarise
from tonetune.evaluation.settings import MultiTurnSettings
from tonetune.generation.sampling import Sampling
from tonetune.persona import single_turn


def ask_first_turn(
    pool: AnswerPool, contestants: list[Contestant], questions: list[str], sampling: Sampling
) -> dict[str, Ticket]:
    """Queue every conversation's opening question (answered with the question sets' round)."""
    return {c.name: pool.ask(c.name, [single_turn(q) for q in questions], sampling) for c in contestants}


def converse(
    pool: AnswerPool,
    first_turn: dict[str, Ticket],
    questions: list[str],
    settings: MultiTurnSettings,
    sampling: Sampling,
) -> dict[str, list[list[dict[str, str]]]]:
    """Each question opens a conversation per contestant; every turn, all contestants answer together.

    ``first_turn``: the opening questions, already asked (``ask_first_turn``).
    """
    histories = {name: [single_turn(q) for q in questions] for name in first_turn}
    tickets = first_turn
    for turn in range(settings.turns):
        pool.run()
        for name, conversations in histories.items():
            for index, (history, answer) in enumerate(
                zip(conversations, pool.answers(tickets[name]).texts, strict=True)
            ):
                history.append({"role": "assistant", "content": answer})
                if turn < settings.turns - 1:
                    history.append(
                        {
                            "role": "user",
                            "content": settings.follow_ups[(index + turn) % len(settings.follow_ups)],
                        }
                    )
        if turn < settings.turns - 1:
            tickets = {
                name: pool.ask(name, [list(h) for h in convs], sampling) for name, convs in histories.items()
            }
    return histories


def drift(
    pool: AnswerPool,
    first_turn: dict[str, Ticket],
    questions: list[str],
    settings: MultiTurnSettings,
    sampling: Sampling,
    tone: ToneReader,
    candidate: str,
) -> dict[str, Any]:
    """Persona share and repeats per turn for every contestant; summaries over turns 2-n and 3-n."""
    transcripts = converse(pool, first_turn, questions, settings, sampling)
    per_turn = {}
    for name, conversations in transcripts.items():
        turns = [[c[2 * t + 1]["content"] for c in conversations] for t in range(settings.turns)]
        per_turn[name] = [
            _turn_values(tone, turn, turns[t - 1] if t else None) for t, turn in enumerate(turns)
        ]
    indices = stats.resample_indices(len(questions))
    summaries = {name: _summaries(values) for name, values in per_turn.items()}
    metrics, intervals = summarise(summaries, indices)
    return {
        "conversations": len(questions),
        "turns": settings.turns,
        "per_turn": {
            name: [{k: stats.mean(v, indices).as_dict() for k, v in turn.items()} for turn in values]
            for name, values in per_turn.items()
        },
        "metrics": metrics,
        "intervals": intervals,
        "differences": compare(summaries, candidate, indices),
        "transcripts": transcripts,
    }


def _turn_values(tone: ToneReader, answers: list[str], previous: list[str] | None) -> dict[str, np.ndarray]:
    read_each_turn = names(multi_turn=True)
    values = {k: v for k, v in tone.read(answers).items() if k in read_each_turn}
    if previous is not None:
        values["repeats_previous"] = m.same_as_previous(answers, previous)
    return values


def share_over_turns(first: int, turns: int) -> str:
    """The name of the persona share over user turns ``first`` to ``turns`` (1-based)."""
    return f"persona_share_turns_{first}_{turns}"


def turn_metric_names(turns: int) -> list[str]:
    """The summaries a conversation of ``turns`` user turns gets, in report order."""
    shares = [share_over_turns(first, turns) for first in (2, 3) if first <= turns]
    return [*shares, "repeats_previous"] if shares else []


def _summaries(turns: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per conversation: the persona share over turns 2-n and 3-n, and the share of repeated answers."""
    summary = {
        share_over_turns(first, len(turns)): np.mean(
            [t["tone_classifier"] for t in turns[first - 1 :]], axis=0
        )
        for first in (2, 3)
        if first <= len(turns)
    }
    if len(turns) > 1:
        summary["repeats_previous"] = np.mean([t["repeats_previous"] for t in turns[1:]], axis=0)
    return summary
