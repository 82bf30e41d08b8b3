"""The decoding defaults of the evaluation, arena, chat and server: one definition."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SamplingConfig:
    """``*.sampling``: how answers are decoded (``tonetune.generation.sampling.Sampling`` checks ranges).

    Greedy by default (temperature 0): reproducible numbers. Greedy decoding of small models falls
    into loops ("I'm a fake. I'm a fake. ..."); a mild repetition penalty, the same for every
    contestant, stops that (on the shared Elon set it took the fine-tuned model from 0.90 to 1.00 on
    the tone classifier).
    """

    max_new_tokens: int = 96
    temperature: float = 0.0
    """0 decodes greedily; above it samples from the tempered distribution."""
    top_p: float = 1.0
    repetition_penalty: float = 1.15
    seed: int = 0
