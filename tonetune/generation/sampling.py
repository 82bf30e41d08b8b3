"""How one answer is decoded: greedy or sampled, with its own limit, penalty and seed."""

from __future__ import annotations

from dataclasses import dataclass


class SamplingError(ValueError):
    """A sampling setting out of its range; the message names the field."""


@dataclass(frozen=True)
class Sampling:
    """Decoding settings of one request (greedy by default: reproducible evaluations).

    Every request in a batch keeps its own settings; a sampled answer depends only on its seed.
    """

    max_new_tokens: int = 96
    temperature: float = 0.0
    """0 decodes greedily; above 0 samples from the tempered distribution."""
    top_p: float = 1.0
    """Nucleus sampling: the smallest set of tokens whose probability reaches ``top_p``."""
    repetition_penalty: float = 1.0
    """Above 1 discourages tokens already in the conversation (1.15 stops small models' loops)."""
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "max_new_tokens": self.max_new_tokens >= 1,
            "temperature": 0.0 <= self.temperature <= 100.0,
            "top_p": 0.0 < self.top_p <= 1.0,
            "repetition_penalty": self.repetition_penalty > 0.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise SamplingError(f"{name}={getattr(self, name)!r} is out of range ({RANGES[name]})")

    @property
    def greedy(self) -> bool:
        """Whether the answer is the most likely token at every step."""
        return self.temperature == 0.0


RANGES = {
    "max_new_tokens": "at least 1",
    "temperature": "0 to 100; 0 is greedy",
    "top_p": "above 0, at most 1",
    "repetition_penalty": "above 0; 1 is none",
}
