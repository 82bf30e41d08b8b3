"""Teachers write the training data: an OpenAI(-compatible) API, or the embedded model in-process.

Every teacher answers a list of ChatRequests and goes through the on-disk ResponseCache first,
so a re-run after a crash sends only what is missing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from tonetune.errors import ConfigError, ToneTuneError
from tonetune.synthesis.cache import ResponseCache
from tonetune.synthesis.requests import ChatRequest, ChatResult

log = logging.getLogger(__name__)

OnResult = Callable[[int, ChatResult], None]


class TeacherError(ToneTuneError):
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


class Teacher(ABC):
    """Answers chat requests, from the cache when it can."""

    model: str
    supports_json: bool = False
    batch_mode: bool = False

    def __init__(self, cache: ResponseCache | None = None, prices: dict[str, float] | None = None) -> None:
        self.cache = cache
        self.prices = Prices(**(prices or {}))
        self.usage = Usage()

    @property
    def cache_namespace(self) -> str:
        """What identifies this teacher's answers in the cache (the model, and the server for APIs)."""
        return self.model

    def complete(self, requests: list[ChatRequest], desc: str = "Teacher") -> list[ChatResult]:
        """Answer every request, in order; identical requests are sent once."""
        keys = [r.key(self.cache_namespace) for r in requests]
        found: dict[str, ChatResult] = {}
        for key in set(keys):
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                found[key] = hit
        todo = {key: request for key, request in zip(keys, requests, strict=True) if key not in found}
        if found:
            log.info("%s: %d of %d answers from the cache", desc, len(set(keys)) - len(todo), len(set(keys)))
        todo_keys = list(todo)

        def store(index: int, result: ChatResult) -> None:
            key = todo_keys[index]
            if self.cache is not None:
                self.cache.put(key, self.cache_namespace, todo[key], result)
            found[key] = result

        if todo:
            self._complete_missing(list(todo.values()), store, desc)
        results = [found[key] for key in keys]
        for key in set(keys):
            self.usage.add(found[key])
        return results

    def cost(self) -> dict[str, float]:
        """Estimated dollars spent this run and in total (including cached answers)."""
        u = self.usage
        spent = self.prices.cost(u.prompt_tokens, u.completion_tokens, self.batch_mode)
        cached = self.prices.cost(u.cached_prompt_tokens, u.cached_completion_tokens, self.batch_mode)
        return {"spent_usd": spent, "total_usd": spent + cached}

    @abstractmethod
    def _complete_missing(self, requests: list[ChatRequest], store: OnResult, desc: str) -> None:
        """Send ``requests``; call ``store(i, result)`` as each answer arrives."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release clients and models."""


class OpenAITeacher(Teacher):
    """The OpenAI API, or any OpenAI-compatible server (``base_url``), through the ``openai`` SDK.

    The SDK retries 429, 5xx and timeouts with exponential backoff and jitter, honouring
    ``Retry-After``; we add a concurrency limit and requests/tokens-per-minute limiters.
    The API key is read from the environment variable ``api_key_env`` and nowhere else.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        api_key_required: bool = True,
        concurrency: int = 16,
        requests_per_minute: int = 500,
        tokens_per_minute: int = 200_000,
        timeout: float = 60.0,
        max_retries: int = 6,
        json_mode: bool = True,
        max_tokens_param: str = "max_completion_tokens",
        mode: str = "online",
        batch_poll_seconds: float = 30.0,
        cache: ResponseCache | None = None,
        prices: dict[str, float] | None = None,
    ) -> None:
        super().__init__(cache, prices)
        if mode not in {"online", "batch"}:
            raise ConfigError(f"teacher.mode={mode!r} is not one of online, batch")
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.api_key_required = api_key_required
        self.concurrency = concurrency
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.timeout = timeout
        self.max_retries = max_retries
        self.supports_json = json_mode
        self.max_tokens_param = max_tokens_param
        self.batch_mode = mode == "batch"
        self.batch_poll_seconds = batch_poll_seconds

    @property
    def cache_namespace(self) -> str:
        """Model plus server: the same model name on two servers gives different answers."""
        return f"{self.base_url or 'https://api.openai.com/v1'}#{self.model}"

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if self.api_key_required:
            raise ConfigError(
                f"set the environment variable {self.api_key_env} (teacher.api_key_env) to your API key"
            )
        return "unused"  # local servers accept any key; the SDK insists on one

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for the SDK client (the key stays out of every config and log)."""
        return {
            "api_key": self._api_key(),
            "base_url": self.base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The chat-completions body for one request."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.chat,
            "temperature": request.temperature,
            self.max_tokens_param: request.max_tokens,
            "seed": request.seed,
        }
        if request.json_mode and self.supports_json:
            body["response_format"] = {"type": "json_object"}
        return body

    def _complete_missing(self, requests: list[ChatRequest], store: OnResult, desc: str) -> None:
        if self.batch_mode:
            from tonetune.synthesis.batch_api import run_batch

            run_batch(self, requests, store, desc)
            return
        asyncio.run(self._complete_async(requests, store, desc))

    async def _complete_async(self, requests: list[ChatRequest], store: OnResult, desc: str) -> None:
        from aiolimiter import AsyncLimiter
        from openai import AsyncOpenAI
        from openai.types.chat import ChatCompletion

        client = AsyncOpenAI(**self.client_options())
        slots = asyncio.Semaphore(self.concurrency)
        per_minute = AsyncLimiter(self.requests_per_minute, 60)
        tokens = AsyncLimiter(self.tokens_per_minute, 60)
        progress = tqdm(total=len(requests), desc=desc, unit="req")

        async def send(index: int, request: ChatRequest) -> None:
            async with slots:
                await per_minute.acquire()
                await tokens.acquire(min(_estimated_tokens(request), self.tokens_per_minute))
                # The SDK's generic POST: same retries, backoff and auth as chat.completions.create,
                # without re-validating our already well-formed body (milliseconds of CPU per request).
                response = await client.post(
                    "/chat/completions", cast_to=ChatCompletion, body=self.request_body(request)
                )
            store(index, _result_from_response(response))
            progress.update()

        try:
            outcomes = await asyncio.gather(
                *(send(i, r) for i, r in enumerate(requests)), return_exceptions=True
            )
        finally:
            progress.close()
            await client.close()
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise TeacherError(
                f"{len(failures)} of {len(requests)} requests to {self.base_url or 'OpenAI'} failed after "
                f"{self.max_retries} retries ({type(failures[0]).__name__}: {failures[0]}); "
                f"the {len(requests) - len(failures)} answers received are cached: re-run to resume"
            )


def _estimated_tokens(request: ChatRequest) -> int:
    """Rough token count for the TPM limiter: 4 characters a token, plus the answer budget."""
    return sum(len(content) for _, content in request.messages) // 4 + request.max_tokens


def _result_from_response(response: Any) -> ChatResult:
    choice = response.choices[0]
    usage = response.usage
    return ChatResult(
        text=choice.message.content or "",
        finish_reason=choice.finish_reason or "stop",
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
    )


def result_from_body(body: dict[str, Any]) -> ChatResult:
    """A ChatResult from a chat-completions response body (as the Batch API returns them)."""
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    return ChatResult(
        text=choice["message"].get("content") or "",
        finish_reason=choice.get("finish_reason") or "stop",
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
    )


class LocalTeacher(Teacher):
    """A base model in this process (the embedded SmolLM2 by default) with batched generation.

    Fine-tuning a model on its own persona-prompted answers is context distillation: the tone
    moves from the prompt into the weights. A larger teacher writes better data.
    """

    def __init__(
        self,
        base_model: Any,
        batch_size: int = 16,
        cache: ResponseCache | None = None,
        prices: dict[str, float] | None = None,
        loaded: tuple[Any, Any] | None = None,
    ) -> None:
        """``loaded``: the (model, tokenizer) of ``base_model`` when the caller already has them."""
        from tonetune.models import as_dict

        super().__init__(cache, prices)
        self.base_model = as_dict(base_model)
        self.model = f"local:{self.base_model['name']}"
        self.batch_size = batch_size
        self._loaded = loaded

    def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from tonetune.models import load_causal_lm, load_tokenizer

            model = load_causal_lm(self.base_model)
            model.eval()
            self._loaded = (model, load_tokenizer(self.base_model))
        return self._loaded

    def _complete_missing(self, requests: list[ChatRequest], store: OnResult, desc: str) -> None:
        """Generate in batches of requests that share sampling settings."""
        from tonetune.generation import Sampling, generate_chat

        model, tokenizer = self._model()
        groups: dict[tuple[float, int], list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            groups[(request.temperature, request.max_tokens)].append(index)
        with tqdm(total=len(requests), desc=desc, unit="req") as progress:
            for (temperature, max_tokens), indices in groups.items():
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start : start + self.batch_size]
                    sampling = Sampling(
                        max_new_tokens=max_tokens,
                        do_sample=temperature > 0,
                        temperature=max(temperature, 1e-3),
                        seed=int(requests[chunk[0]].key(self.model)[:8], 16),
                    )
                    chats = [requests[i].chat for i in chunk]
                    answers = generate_chat(model, tokenizer, chats, sampling, len(chunk), progress=False)
                    for index, answer in zip(chunk, answers, strict=True):
                        store(
                            index,
                            ChatResult(
                                answer.text,
                                answer.finish_reason,
                                answer.prompt_tokens,
                                answer.completion_tokens,
                            ),
                        )
                    progress.update(len(chunk))

    def close(self) -> None:
        """Free the model."""
        self._loaded = None


def describe(teacher: Teacher) -> dict[str, Any]:
    """What the dataset card says about the teacher (never the key)."""
    info: dict[str, Any] = {"model": teacher.model, "type": type(teacher).__name__}
    base_url = getattr(teacher, "base_url", None)
    if base_url:
        info["base_url"] = base_url
    if teacher.batch_mode:
        info["mode"] = "batch"
    return info
