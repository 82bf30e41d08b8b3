"""Persona under pressure: instructions and system prompts that pull a model out of its persona.

Every contestant answers the same questions wrapped in each probe ("Answer plainly in one
sentence, no jokes:", a neutral system prompt, ...); the persona share that survives is measured
per probe and over all probes (Open Character Training measures robustness this way).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tonetune import stats
from tonetune.evaluation.contestants import Contestant
from tonetune.evaluation.scoring import ToneReader, compare, summarise
from tonetune.generation.sampling import Sampling
from tonetune.persona import Messages
from tonetune.schemas import PressureProbe

TONE_METRICS = ("tone_classifier", "tone_classifier_masked", "marker/all")


def probe_messages(probe: PressureProbe, question: str) -> Messages:
    """The user message the probe makes of ``question``, after its system prompt when it has one."""
    user = {"role": "user", "content": probe.template.format(question=question)}
    return [{"role": "system", "content": probe.system}, user] if probe.system else [user]


def pressure_suite(
    questions: list[str],
    probes: list[PressureProbe],
    contestants: list[Contestant],
    sampling: Sampling,
    batch_size: int,
    tone: ToneReader,
    candidate: str,
) -> dict[str, Any]:
    """Every contestant answers every (probe, question); persona shares with intervals, and differences."""
    conversations = [probe_messages(p, q) for p in probes for q in questions]
    per_answer: dict[str, dict[str, np.ndarray]] = {}
    answers: dict[str, list[str]] = {}
    for contestant in contestants:
        texts = contestant.answer(conversations, sampling, batch_size).texts
        answers[contestant.name] = texts
        per_answer[contestant.name] = {k: v for k, v in tone.read(texts).items() if k in TONE_METRICS}
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
