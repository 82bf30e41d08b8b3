"""How one answer is decoded: greedy or sampled, with its own limit, penalty and seed."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from tonetune.errors import ConfigError

if TYPE_CHECKING:
    from transformers import GenerationConfig


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

    # Every encoding of these settings converts here, and only here.

    @classmethod
    def default(cls) -> Sampling:
        """Tonetune's decoding default (``schemas.SamplingConfig``): evaluation, arena, chat and server.

        ``Sampling()`` itself is plain greedy decoding with no penalty.
        """
        from tonetune.schemas.sampling import SamplingConfig

        return cls.from_config(SamplingConfig())

    @classmethod
    def from_config(cls, config: Any, key: str = "sampling") -> Sampling:
        """From a typed ``*.sampling`` config (``schemas.SamplingConfig``); a bad value names ``key``."""
        try:
            return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})
        except SamplingError as error:
            raise ConfigError(f"{key}.{error}") from None

    def overridden(self, **values: Any) -> Sampling:
        """These settings with each value that is not None replaced (a request's own, a user's)."""
        return replace(self, **{name: value for name, value in values.items() if value is not None})

    def request_params(self) -> dict[str, Any]:
        """Keyword arguments of ``llm.requests.ChatRequest`` (``ChatRequest.of(messages, **params)``)."""
        params = asdict(self)
        params["max_tokens"] = params.pop("max_new_tokens")
        return params

    @classmethod
    def from_request_params(cls, **params: Any) -> Sampling:
        """Back from ``request_params`` (extra keys, e.g. ``json_mode``, are not sampling)."""
        names = {f.name for f in fields(cls)} - {"max_new_tokens"}
        return cls(max_new_tokens=params["max_tokens"], **{k: v for k, v in params.items() if k in names})

    def openai_params(self, max_tokens_param: str = "max_tokens") -> dict[str, Any]:
        """The chat-completions body fields (``top_p`` and ``repetition_penalty`` only when set).

        ``repetition_penalty`` is no OpenAI parameter; vLLM and ``tonetune-serve`` honour it.
        """
        body = {"temperature": self.temperature, max_tokens_param: self.max_new_tokens, "seed": self.seed}
        if self.top_p != 1.0:
            body["top_p"] = self.top_p
        if self.repetition_penalty != 1.0:
            body["repetition_penalty"] = self.repetition_penalty
        return body

    def to_generation_config(self, config: GenerationConfig) -> GenerationConfig:
        """``config`` (a model's, stop tokens kept) set to decode like this (generation_config.json)."""
        config.update(
            max_new_tokens=self.max_new_tokens,
            do_sample=not self.greedy,
            temperature=None if self.greedy else self.temperature,
            top_p=None if self.greedy else self.top_p,
            repetition_penalty=self.repetition_penalty,
        )
        return config

    @classmethod
    def from_generation_config(cls, config: GenerationConfig) -> Sampling:
        """Read back what ``to_generation_config`` wrote (a missing value takes the default)."""
        return cls(
            max_new_tokens=config.max_new_tokens or cls.max_new_tokens,
            temperature=(config.temperature or 1.0) if config.do_sample else 0.0,
            top_p=config.top_p or 1.0,
            repetition_penalty=config.repetition_penalty or 1.0,
        )


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
