"""The OpenAI API, or any OpenAI-compatible server, through the official ``openai`` SDK.

The SDK retries 429, 5xx and timeouts with exponential backoff and jitter, honouring
``Retry-After``; we add a concurrency limit, requests/tokens-per-minute limiters, a connection
probe (a dead endpoint fails in seconds, not after a minute of retries) and a stall timeout (an
endpoint that accepts and never answers ends the run with an error naming the option).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from tqdm.auto import tqdm

from tonetune.errors import ConfigError
from tonetune.llm.cache import ResponseCache
from tonetune.llm.client import LLMClient, LLMError, OnResult
from tonetune.llm.endpoints import endpoint_identity, hide_credentials
from tonetune.llm.requests import ChatRequest, ChatResult, result_from_completion

OPENAI_URL = "https://api.openai.com/v1"


NOT_OPENAI = ("repetition_penalty",)
"""Body fields OpenAI's API does not define (vLLM and tonetune-serve honour them)."""


class OpenAIClient(LLMClient):
    """Chat completions from an OpenAI-compatible endpoint; the key comes from ``api_key_env`` only."""

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
        stall_timeout: float = 300.0,
        json_mode: bool = True,
        max_tokens_param: str = "max_completion_tokens",
        mode: str = "online",
        batch_poll_seconds: float = 30.0,
        max_reply_chars: int = 20_000,
        cache: ResponseCache | None = None,
        prices: dict[str, float] | None = None,
        role: str = "teacher",
    ) -> None:
        super().__init__(cache, prices, role)
        if mode not in {"online", "batch"}:
            raise ConfigError(f"{role}.mode={mode!r} is not one of online, batch")
        if max_reply_chars < 1:
            raise ConfigError(f"{role}.max_reply_chars={max_reply_chars} must be at least 1")
        self.max_reply_chars = max_reply_chars
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.api_key_required = api_key_required
        self.concurrency = concurrency
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.timeout = timeout
        self.max_retries = max_retries
        self.stall_timeout = stall_timeout
        self.supports_json = json_mode
        self.max_tokens_param = max_tokens_param
        self.batch_mode = mode == "batch"
        self.batch_poll_seconds = batch_poll_seconds

    @property
    def url(self) -> str:
        """The endpoint's base URL (with its credentials, if any: for the SDK only)."""
        return self.base_url or OPENAI_URL

    @property
    def shown_url(self) -> str:
        """The base URL as every report, log line and error shows it (credentials hidden)."""
        return hide_credentials(self.url)

    @property
    def cache_namespace(self) -> str:
        """Model plus server: the same model name on two servers gives different answers.

        The server is its identity (tonetune/llm/endpoints.py): no credentials, loopback spelled one way.
        """
        return f"{endpoint_identity(self.url)}#{self.model}"

    def describe(self) -> dict[str, Any]:
        """Model, type and server (never the key, nor a password in the URL)."""
        return {**super().describe(), **({"base_url": self.shown_url} if self.base_url else {})}

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if self.api_key_required:
            raise ConfigError(
                f"set the environment variable {self.api_key_env} ({self.role}.api_key_env) to your API key"
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
            **request.sampling.openai_params(self.max_tokens_param),
        }
        if request.json_mode and self.supports_json:
            body["response_format"] = {"type": "json_object"}
        return body

    def stream(self, request: ChatRequest) -> Iterator[str]:
        """The answer streamed by the server, through the official SDK."""
        from openai import OpenAI

        body = self.request_body(request)
        # the SDK's create() takes only OpenAI's own parameters; the others travel in the body as is
        extra = {key: body.pop(key) for key in NOT_OPENAI if key in body}
        api = OpenAI(**self.client_options())
        chunks = api.chat.completions.create(**body, extra_body=extra or None, stream=True)
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    def probe(self) -> None:
        """Open (and close) a TCP connection to the endpoint; a refused or unknown host fails at once."""
        parsed = urlparse(self.url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=min(self.timeout, 10.0)).close()
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise LLMError(
                f"{self.role}.base_url={self.shown_url}: cannot connect ({reason}); is the server running, "
                "and is the address right?"
            ) from err

    def _complete_missing(self, requests: list[ChatRequest], store: OnResult, desc: str) -> None:
        self._api_key()  # a missing key first: it is the user's to fix before anything is sent
        self.probe()
        if self.batch_mode:
            from tonetune.llm.batch_api import run_batch

            run_batch(self, requests, store, desc)
            return
        asyncio.run(self._complete_async(requests, store, desc))

    async def _complete_async(self, requests: list[ChatRequest], store: OnResult, desc: str) -> None:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(**self.client_options())
        progress = tqdm(total=len(requests), desc=desc, unit="req")
        last_answer = [time.monotonic()]

        def arrived(index: int, result: ChatResult) -> None:
            store(index, result)
            last_answer[0] = time.monotonic()
            progress.update()

        sending = asyncio.ensure_future(self._send_all(client, requests, arrived))
        watchdog = asyncio.ensure_future(self._watch(last_answer))
        try:
            await asyncio.wait({sending, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sending, watchdog):
                task.cancel()
            progress.close()
            await client.close()
        if not sending.done() or sending.cancelled():
            raise LLMError(
                f"{self.role}.base_url={self.shown_url}: no answer for {self.stall_timeout:.0f} s "
                f"({self.role}.stall_timeout); the {progress.n} answers received are cached: re-run to resume"
            )
        failures = [o for o in sending.result() if isinstance(o, BaseException)]
        if failures:
            reason = hide_credentials(str(failures[0]))
            raise LLMError(
                f"{len(failures)} of {len(requests)} requests to {self.shown_url} failed after "
                f"{self.max_retries} retries ({type(failures[0]).__name__}: {reason}); "
                f"the {len(requests) - len(failures)} answers received are cached: re-run to resume"
            )

    async def _send_all(self, client: Any, requests: list[ChatRequest], arrived: OnResult) -> list[Any]:
        from aiolimiter import AsyncLimiter
        from openai.types.chat import ChatCompletion

        slots = asyncio.Semaphore(self.concurrency)
        per_minute = AsyncLimiter(self.requests_per_minute, 60)
        tokens = AsyncLimiter(self.tokens_per_minute, 60)

        async def send(index: int, request: ChatRequest) -> None:
            async with slots:
                await per_minute.acquire()
                await tokens.acquire(min(_estimated_tokens(request), self.tokens_per_minute))
                # The SDK's generic POST: same retries, backoff and auth as chat.completions.create,
                # without re-validating our already well-formed body (milliseconds of CPU per request).
                response = await client.post(
                    "/chat/completions", cast_to=ChatCompletion, body=self.request_body(request)
                )
            arrived(index, result_from_completion(response))

        return await asyncio.gather(*(send(i, r) for i, r in enumerate(requests)), return_exceptions=True)

    async def _watch(self, last_answer: list[float]) -> None:
        """Return once no answer has arrived for ``stall_timeout`` seconds."""
        while time.monotonic() - last_answer[0] < self.stall_timeout:
            await asyncio.sleep(min(1.0, self.stall_timeout / 4))


def _estimated_tokens(request: ChatRequest) -> int:
    """Rough token count for the TPM limiter: 4 characters a token, plus the answer budget."""
    return sum(len(content) for _, content in request.messages) // 4 + request.max_tokens
