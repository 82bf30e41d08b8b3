"""``tonetune-serve``: an OpenAI-compatible chat-completions server (FastAPI + uvicorn, one process).

Streaming and non-streaming answers with per-choice finish reasons and token usage, ``/v1/models``,
several persona runs on one base (the request's ``model`` picks the adapter), batching through
one inference thread, and an optional API key from the environment. Every request is validated
before it is queued: a bad one gets a 400 naming the field and never reaches a batch. Its body and
messages are bounded (``max_body_bytes``, ``max_message_chars``) and it is tokenised off the event
loop, so one large request never stalls the others (or ``/health``). A client that leaves
(a dropped stream, a closed connection) cancels its answers at the next decoding step. Without a
``seed``, each sampled request draws a fresh one; with one, it is reproducible.

What is public: ``GET /health`` always. With a key set (``api_key_env``), everything else,
``/docs`` and ``/openapi.json`` included, needs ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tonetune.generation.engine import GenerationRequest, PromptTooLongError, encode_chat
from tonetune.generation.sampling import SEED_RANGE, SamplingError
from tonetune.persona import with_system_prompt
from tonetune.schemas.commands import ServerSettings
from tonetune.serving.guards import authorize, check_message_lengths, install_error_handlers, read_body
from tonetune.serving.protocol import APIError, ChatCompletionRequest, parse_request
from tonetune.serving.scheduler import Job, Scheduler, asyncio_sink
from tonetune.serving.served import Served, ServedModel

log = logging.getLogger(__name__)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def build_app(served: Served, settings: ServerSettings) -> FastAPI:
    """The FastAPI app serving ``served``."""
    scheduler = Scheduler(served.engine, settings.max_batch_size, settings.batch_timeout)
    tokenizer = copy.deepcopy(served.engine.tokenizer)  # the API's own: tokenizers are not shared
    tokenizing = ThreadPoolExecutor(1, thread_name_prefix="tonetune-tokenize")  # its one user

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        yield
        scheduler.stop()
        tokenizing.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="tonetune", lifespan=lifespan)
    app.middleware("http")(authorize(settings.api_key_env))
    install_error_handlers(app)
    _add_lookups(app, served)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        body = parse_request(await read_body(request, settings.max_body_bytes))
        check_message_lengths(body, settings.max_message_chars)
        model = _find(served, body.model)
        loop = asyncio.get_running_loop()
        job_requests = await loop.run_in_executor(
            tokenizing, _generation_requests, body, model, settings, served.engine.max_context, tokenizer
        )
        events: asyncio.Queue = asyncio.Queue()
        job = Job(job_requests, asyncio_sink(loop, events))
        scheduler.submit(job)
        watcher = asyncio.create_task(_cancel_when_gone(request, job))
        try:
            if not body.stream:
                return await _complete(job, events, model, settings)
            stream = _events(job, events, settings.timeout)
            first = await anext(stream, None)  # an error before the first token is still an HTTP error
        finally:
            watcher.cancel()  # a streaming response watches its client itself
        return StreamingResponse(_stream(first, stream, model, body, job), media_type="text/event-stream")

    return app


def _add_lookups(app: FastAPI, served: Served) -> None:
    """``/health``, ``/v1/models`` and ``/v1/models/{id}``."""

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(m) for m in served.models.values()]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict[str, Any]:
        return _model_card(_find(served, name))


def _find(served: Served, name: str) -> ServedModel:
    model = served.find(name)
    if model is None:
        raise APIError(404, f"The model `{name}` does not exist (see /v1/models)", "model", "model_not_found")
    return model


def _model_card(model: ServedModel) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": int(time.time()), "owned_by": "tonetune"}


async def _cancel_when_gone(request: Request, job: Job) -> None:
    """Cancel ``job`` when its client disconnects (the body is read: the next message says so)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    job.cancelled.set()
    job.emit(("gone",))  # and stop waiting for its answers


def _generation_requests(
    body: ChatCompletionRequest,
    model: ServedModel,
    settings: ServerSettings,
    max_context: int,
    tokenizer: Any,
) -> list[GenerationRequest]:
    """One request per choice, each with its own sampling (and seed); 400 for what cannot be answered."""
    if body.n > settings.max_n:
        raise APIError(400, f"n: at most {settings.max_n} choices per request (max_n)", "n")
    try:
        input_ids = encode_chat(tokenizer, with_system_prompt(body.chat(), model.system_prompt), max_context)
    except PromptTooLongError as err:
        raise APIError(400, f"messages: {err}", "messages", "context_length_exceeded") from err
    try:
        sampling = model.sampling.overridden(
            max_new_tokens=body.limit or settings.default_max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            repetition_penalty=body.repetition_penalty,
            seed=secrets.randbits(63) if body.seed is None else body.seed,
        )
    except SamplingError as err:
        raise APIError(400, str(err), str(err).split("=", 1)[0]) from err
    return [
        GenerationRequest(input_ids, replace(sampling, seed=choice_seed(sampling.seed, i)), model.adapter)
        for i in range(body.n)
    ]


def choice_seed(seed: int, choice: int) -> int:
    """The seed of choice ``choice`` of ``n``: consecutive, wrapped into what a generator takes."""
    low, high = SEED_RANGE
    return low + (seed + choice - low) % (high - low + 1)


async def _events(job: Job, events: asyncio.Queue, timeout: float) -> AsyncIterator[tuple]:
    """The job's events until it is done; an error event raises."""
    try:
        while True:
            event = await asyncio.wait_for(events.get(), timeout)
            if event[0] == "done":
                return
            if event[0] == "error":
                raise APIError(500, event[1], kind="server_error")
            if event[0] == "gone":  # nobody reads this answer (nginx's status for it)
                raise APIError(499, "the client closed the request", kind="client_closed_request")
            yield event
    except TimeoutError as err:
        raise APIError(504, f"no answer within {timeout:.0f} s (timeout)", kind="server_error") from err
    finally:
        job.cancelled.set()


async def _complete(
    job: Job, events: asyncio.Queue, model: ServedModel, settings: ServerSettings
) -> JSONResponse:
    texts = [""] * len(job.requests)
    finals: dict[int, Any] = {}
    async for _, choice, delta in _events(job, events, settings.timeout):
        texts[choice] += delta.text
        if delta.finish_reason is not None:
            finals[choice] = delta
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finals[i].finish_reason,
        }
        for i, text in enumerate(texts)
    ]
    completion_tokens = sum(d.completion_tokens for d in finals.values())
    return JSONResponse(
        {**_envelope("chat.completion", model), "choices": choices, "usage": _usage(job, completion_tokens)}
    )


async def _stream(
    first: tuple | None, rest: AsyncIterator[tuple], model: ServedModel, body: ChatCompletionRequest, job: Job
) -> AsyncIterator[str]:
    envelope = _envelope("chat.completion.chunk", model)
    completion_tokens = 0
    for i in range(body.n):
        yield _sse({**envelope, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""}}]})
    try:
        async for _, choice, delta in _chain(first, rest):
            chunk = {
                "index": choice,
                "delta": {"content": delta.text} if delta.text else {},
                "finish_reason": delta.finish_reason,
            }
            completion_tokens += delta.completion_tokens if delta.finish_reason else 0
            yield _sse({**envelope, "choices": [chunk]})
    except APIError as err:  # after the 200: an error event, which the official client raises as APIError
        yield _sse(err.body())
        return
    if body.stream_options and body.stream_options.include_usage:
        yield _sse({**envelope, "choices": [], "usage": _usage(job, completion_tokens)})
    yield "data: [DONE]\n\n"


async def _chain(first: tuple | None, rest: AsyncIterator[tuple]) -> AsyncIterator[tuple]:
    if first is not None:
        yield first
    async for event in rest:
        yield event


def _envelope(kind: str, model: ServedModel) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": kind,
        "created": int(time.time()),
        "model": model.id,
    }


def _usage(job: Job, completion_tokens: int) -> dict[str, int]:
    prompt = len(job.requests[0].input_ids)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def serve(served: Served, settings: ServerSettings, host: str, port: int) -> None:
    """Run the server until SIGTERM or SIGINT (uvicorn stops within a few seconds, one process)."""
    import uvicorn

    if not os.environ.get(settings.api_key_env or "") and host not in LOOPBACK:
        log.warning(
            "Serving on %s without an API key: anyone who can reach port %d can use it (set %s)",
            host,
            port,
            settings.api_key_env,
        )
    config = uvicorn.Config(
        build_app(served, settings), host=host, port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    uvicorn.Server(config).run()
