"""How one answer is decoded: greedy or sampled, with its own limit, penalty and seed."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass


class SamplingError(ValueError):
    """A sampling setting out of its range; the message names the field."""


GREEDY_BELOW = 1e-5
"""Temperatures below this decode greedily: their draw is the argmax anyway, and dividing scores by
them overflows to infinity (then NaN), so they are never used as divisors."""
SEED_RANGE = (-(2**63), 2**64 - 1)
"""What a torch generator can be seeded with."""


@dataclass(frozen=True)
class Sampling:
    """Decoding settings of one request (greedy by default: reproducible evaluations).

    Every request in a batch keeps its own settings; a sampled answer depends only on its seed.
    Every value is checked here, the one place, so a setting that cannot be sampled never reaches
    a batch.
    """

    max_new_tokens: int = 96
    temperature: float = 0.0
    """0 decodes greedily (so does anything below ``GREEDY_BELOW``); above it samples from the
    tempered distribution."""
    top_p: float = 1.0
    """Nucleus sampling: the smallest set of tokens whose probability reaches ``top_p``."""
    repetition_penalty: float = 1.0
    """Above 1 discourages tokens already in the conversation (1.15 stops small models' loops)."""
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "max_new_tokens": _is_int(self.max_new_tokens) and self.max_new_tokens >= 1,
            "temperature": _finite(self.temperature) and 0.0 <= self.temperature <= 100.0,
            "top_p": _finite(self.top_p) and 0.0 < self.top_p <= 1.0,
            "repetition_penalty": _finite(self.repetition_penalty) and 0.01 <= self.repetition_penalty <= 100,
            "seed": _is_int(self.seed) and SEED_RANGE[0] <= self.seed <= SEED_RANGE[1],
        }
        for name, ok in checks.items():
            if not ok:
                raise SamplingError(f"{name}={getattr(self, name)!r} is out of range ({RANGES[name]})")

    @property
    def greedy(self) -> bool:
        """Whether the answer is the most likely token at every step."""
        return self.temperature < GREEDY_BELOW


def _finite(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


RANGES = {
    "max_new_tokens": "a whole number, at least 1",
    "temperature": "0 to 100; 0 is greedy",
    "top_p": "above 0, at most 1",
    "repetition_penalty": "0.01 to 100; 1 is none",
    "seed": "a whole number from -2**63 to 2**64-1",
}
