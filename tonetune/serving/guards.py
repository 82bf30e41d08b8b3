"""What the server checks before a request costs anything, and how it answers what it refuses.

The API key (any case of the ``Bearer`` scheme, compared in constant time), the body's size (read
in pieces, refused past ``max_body_bytes`` before it is all in memory), each message's length, and
an OpenAI-shaped ``{"error": {...}}`` for every refusal, unknown routes and crashes included.
"""

from __future__ import annotations

import hmac
import logging
import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from tonetune.serving.protocol import APIError, ChatCompletionRequest, validation_error

log = logging.getLogger(__name__)


def authorize(key_env: str | None) -> Any:
    """Middleware: with a key in ``key_env``, every path but ``/health`` needs ``Bearer <key>``."""

    async def check(request: Request, call_next: Any) -> Any:
        key = os.environ.get(key_env or "")
        if key and request.url.path != "/health" and not _bearer_matches(request, key):
            return APIError(
                401, "invalid or missing API key (Authorization: Bearer ...)", code="invalid_api_key"
            ).response()
        return await call_next(request)

    return check


def _bearer_matches(request: Request, key: str) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body, or a 413 as soon as it is known to be over ``max_bytes``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(size, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, max_bytes: int) -> APIError:
    return APIError(
        413,
        f"the request body is {size} bytes or more; at most {max_bytes} (server.max_body_bytes)",
        code="request_too_large",
    )


def check_message_lengths(body: ChatCompletionRequest, max_chars: int) -> None:
    """A 400 naming the first message longer than ``max_chars`` characters."""
    for index, message in enumerate(body.messages):
        if len(message.text) > max_chars:
            raise APIError(
                400,
                f"messages[{index}].content: {len(message.text)} characters; "
                f"at most {max_chars} per message (server.max_message_chars)",
                "messages",
                "string_above_max_length",
            )


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app answers, as OpenAI's ``{"error": {...}}``."""
    app.exception_handler(APIError)(lambda _, err: err.response())
    app.exception_handler(RequestValidationError)(lambda _, err: validation_error(err.errors()).response())
    app.exception_handler(HTTPException)(_http_error)
    app.exception_handler(Exception)(_crash)


def _http_error(request: Request, err: HTTPException) -> Any:
    if err.status_code == 404:
        message = f"no route {request.method} {request.url.path} (see /v1/models, /v1/chat/completions)"
        return APIError(404, message, code="unknown_url").response()
    if err.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        return APIError(405, message, code="method_not_allowed").response()
    return APIError(err.status_code, str(err.detail)).response()


def _crash(request: Request, err: Exception) -> Any:
    log.error("%s %s failed: %s: %s", request.method, request.url.path, type(err).__name__, err)
    return APIError(500, f"internal error ({type(err).__name__})", kind="server_error").response()
