"""The LLM client interface: answer chat requests, from the on-disk cache when it can.

Synthesis (the teacher), evaluation (the judge, endpoint contestants, neutral answers), the
preference builder and the arena all talk to LLMs through this one interface.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tonetune.errors import ToneTuneError
from tonetune.llm.cache import ResponseCache
from tonetune.llm.requests import ChatRequest, ChatResult

log = logging.getLogger(__name__)

OnResult = Callable[[int, ChatResult], None]


class LLMError(ToneTuneError):
    """Requests failed even after retries (the answers received so far are cached)."""


@dataclass
class Usage:
    """Requests and tokens, split into sent this run and served from the cache."""

    requests_sent: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0

    def add(self, result: ChatResult) -> None:
        """Count one result."""
        if result.cached:
            self.cache_hits += 1
            self.cached_prompt_tokens += result.prompt_tokens
            self.cached_completion_tokens += result.completion_tokens
        else:
            self.requests_sent += 1
            self.prompt_tokens += result.prompt_tokens
            self.completion_tokens += result.completion_tokens


@dataclass
class Prices:
    """US dollars per million tokens."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0
    batch_discount: float = 0.5

    def cost(self, prompt_tokens: int, completion_tokens: int, batch: bool = False) -> float:
        """Estimated cost of these tokens."""
        dollars = (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6
        return dollars * (self.batch_discount if batch else 1.0)


class LLMClient(ABC):
    """Answers chat requests, from the cache when it can.

    Args:
        cache: Where answers are kept (None: nothing is cached).
        prices: Dollars per million tokens, for the cost estimate.
        role: The config key of this client (``teacher``, ``evaluation.judge``, ...): errors name it.
    """

    model: str
    supports_json: bool = False
    batch_mode: bool = False
    in_process: bool = False
    """Capability: answers with a small model loaded in this process (no API; synthesis then takes
    questions from the set's bank, since a small model writes poor ones)."""
    max_reply_chars: int | None = None
    """Longer replies are cut to this before they are cached or used (None: no bound)."""

    def __init__(
        self,
        cache: ResponseCache | None = None,
        prices: dict[str, float] | None = None,
        role: str = "teacher",
    ) -> None:
        self.cache = cache
        self.prices = Prices(**(prices or {}))
        self.role = role
        self.usage = Usage()

    @property
    def cache_namespace(self) -> str:
        """What identifies this client's answers in the cache (the model, and the server for APIs)."""
        return self.model

    def complete(self, requests: list[ChatRequest], desc: str = "LLM") -> list[ChatResult]:
        """Answer every request, in order; identical requests are sent once."""
        keys = [r.key(self.cache_namespace) for r in requests]
        found = self._cached(set(keys))
        todo = {key: request for key, request in zip(keys, requests, strict=True) if key not in found}
        if found:
            log.info("%s: %d of %d answers from the cache", desc, len(found), len(set(keys)))
        todo_keys = list(todo)

        def store(index: int, result: ChatResult) -> None:
            key = todo_keys[index]
            result = result.bounded(self.max_reply_chars)  # a runaway reply never fills the cache
            if self.cache is not None:
                self.cache.put(key, self.cache_namespace, todo[key], result)
            found[key] = result

        if todo:
            self._complete_missing(list(todo.values()), store, desc)
        for key in set(keys):
            self.usage.add(found[key])
        return [found[key] for key in keys]

    def _cached(self, keys: set[str]) -> dict[str, ChatResult]:
        if self.cache is None:
            return {}
        hits = {key: self.cache.get(key) for key in keys}
        return {key: hit for key, hit in hits.items() if hit is not None}

    def cost(self) -> dict[str, float]:
        """Estimated dollars spent this run and in total (including cached answers)."""
        u = self.usage
        spent = self.prices.cost(u.prompt_tokens, u.completion_tokens, self.batch_mode)
        cached = self.prices.cost(u.cached_prompt_tokens, u.cached_completion_tokens, self.batch_mode)
        return {"spent_usd": spent, "total_usd": spent + cached}

    def describe(self) -> dict[str, Any]:
        """What a dataset card or report says about this client (never a key)."""
        info: dict[str, Any] = {"model": self.model, "type": type(self).__name__}
        if self.batch_mode:
            info["mode"] = "batch"
        return info

    def stream(self, request: ChatRequest) -> Iterator[str]:
        """The answer's text as it is written (never cached: a person is watching it appear)."""
        yield self.complete([request], desc="Answer")[0].text

    def engine_for(self, base_model: Any) -> Any:
        """The engine already holding ``base_model`` here, to share instead of loading a copy (or None)."""
        return None

    @abstractmethod
    def _complete_missing(self, requests: list[ChatRequest], store: OnResult, desc: str) -> None:
        """Send ``requests``; call ``store(i, result)`` as each answer arrives."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release clients and models."""
