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
from tonetune.evaluation.contestants import Contestant
from tonetune.evaluation.scoring import ToneReader, compare, summarise
from tonetune.evaluation.settings import MultiTurnSettings
from tonetune.generation.sampling import Sampling
from tonetune.persona import single_turn


def converse(
    contestant: Contestant,
    questions: list[str],
    settings: MultiTurnSettings,
    sampling: Sampling,
    batch_size: int,
) -> list[list[dict[str, str]]]:
    """Each question opens a conversation; the contestant answers every turn, its own answers kept."""
    histories = [single_turn(q) for q in questions]
    for turn in range(settings.turns):
        answers = contestant.answer(histories, sampling, batch_size).texts
        for index, (history, answer) in enumerate(zip(histories, answers, strict=True)):
            history.append({"role": "assistant", "content": answer})
            if turn < settings.turns - 1:
                follow_up = settings.follow_ups[(index + turn) % len(settings.follow_ups)]
                history.append({"role": "user", "content": follow_up})
    return histories


def drift(
    questions: list[str],
    settings: MultiTurnSettings,
    contestants: list[Contestant],
    sampling: Sampling,
    batch_size: int,
    tone: ToneReader,
    candidate: str,
) -> dict[str, Any]:
    """Persona share and repeats per turn for every contestant; summaries over turns 2-5 and 3-5."""
    per_turn: dict[str, list[dict[str, np.ndarray]]] = {}
    transcripts = {}
    for contestant in contestants:
        conversations = converse(contestant, questions, settings, sampling, batch_size)
        transcripts[contestant.name] = conversations
        turns = [[c[2 * t + 1]["content"] for c in conversations] for t in range(settings.turns)]
        per_turn[contestant.name] = [
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
    values = {
        k: v for k, v in tone.read(answers).items() if k in ("tone_classifier", "tone_classifier_masked")
    }
    if previous is not None:
        values["repeats_previous"] = m.same_as_previous(answers, previous)
    return values


def _summaries(turns: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per conversation: the persona share over turns 2-5 and 3-5, and the share of repeated answers."""
    later = turns[1:]
    summary = {}
    if later:
        summary["persona_share_turns_2_5"] = np.mean([t["tone_classifier"] for t in later], axis=0)
        summary["repeats_previous"] = np.mean([t["repeats_previous"] for t in later], axis=0)
    if len(turns) > 2:
        summary["persona_share_turns_3_5"] = np.mean([t["tone_classifier"] for t in turns[2:]], axis=0)
    return summary
