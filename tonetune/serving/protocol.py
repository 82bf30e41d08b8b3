"""The OpenAI chat-completions request, validated before it reaches a batch, and OpenAI-style errors.

Every invalid request gets a 400 whose JSON names the field (``error.param``), as the OpenAI API
answers; an unknown model gets a 404 ``model_not_found``. Types are strict (``max_tokens: true`` is
not 1 token, ``NaN`` is no temperature), and fields tonetune does not implement (tools, structured
output, log probabilities) are refused by name rather than silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

UNSUPPORTED = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "response_format",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
)
"""OpenAI fields tonetune does not implement: any value but one that asks for nothing is a 400."""
ASKS_FOR_NOTHING = (None, False, 0, [], {}, "none", "auto", {"type": "text"})


class APIError(Exception):
    """An error answered to the client as OpenAI does: status, message, type, param and code."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` body."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        """As an HTTP response."""
        return JSONResponse(self.body(), status_code=self.status)


class TextPart(BaseModel):
    """A text part of a message's content list."""

    type: Literal["text"] = "text"
    text: str


class Message(BaseModel):
    """A chat message; roles other than system, user and assistant are refused."""

    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[TextPart]

    @property
    def text(self) -> str:
        """The content as one string."""
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    """``stream_options``: whether the last chunk carries the token usage."""

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields tonetune honours; unknown extra fields are ignored, as many clients send some."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0)
    n: int = Field(default=1, ge=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: str | list[str] | None = None
    tools: Any = None
    tool_choice: Any = None
    parallel_tool_calls: Any = None
    functions: Any = None
    function_call: Any = None
    response_format: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    logit_bias: Any = None
    audio: Any = None
    modalities: Any = None
    prediction: Any = None
    web_search_options: Any = None

    @field_validator(*UNSUPPORTED)
    @classmethod
    def _not_implemented(cls, value: Any) -> Any:
        if not any(value == nothing and type(value) is type(nothing) for nothing in ASKS_FOR_NOTHING):
            raise ValueError("not supported by tonetune-serve (leave it out)")
        return value

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _zero_only(cls, value: float | None) -> float | None:
        if value:
            raise ValueError("is not supported (use repetition_penalty)")
        return value

    @field_validator("stop")
    @classmethod
    def _no_stop(cls, value: Any) -> Any:
        if value:
            raise ValueError("stop sequences are not supported; answers end at the model's end-of-turn token")
        return value

    @field_validator("messages")
    @classmethod
    def _conversation_shape(cls, messages: list[Message]) -> list[Message]:
        if not any(m.role == "user" for m in messages):
            raise ValueError("must include a user message (only system messages were sent)")
        if messages[-1].role != "user":
            raise ValueError("the last message must be the user's")
        return messages

    def chat(self) -> list[dict[str, str]]:
        """The messages as the chat template takes them (``developer`` read as ``system``)."""
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text} for m in self.messages
        ]

    @property
    def limit(self) -> int | None:
        """The answer's token limit, whichever field set it."""
        return self.max_completion_tokens or self.max_tokens


def parse_request(raw: bytes) -> ChatCompletionRequest:
    """The request in ``raw`` (JSON), or the APIError that answers it."""
    try:
        return ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as err:
        raise validation_error(err.errors()) from err


def validation_error(errors: list[dict[str, Any]]) -> APIError:
    """Pydantic's (or FastAPI's) first validation error as a 400 naming the field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [p for p in first.get("loc", ()) if p != "body"]
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        hint = ""
        if "escape" in message:  # how the JSON parser reports a lone surrogate (\\ud800)
            hint = "; text must be valid Unicode: a lone surrogate is not"
        return APIError(400, f"the request body is not valid JSON ({message}{hint})")
    if not loc:
        return APIError(400, message)
    return APIError(400, f"{_path(loc)}: {message}", str(loc[0]))


def _path(loc: list[Any]) -> str:
    """``messages[0].content`` from pydantic's location (union member names such as ``str`` dropped)."""
    path = str(loc[0])
    for part in loc[1:]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif "[" not in str(part) and part not in _TYPE_NAMES:
            path += f".{part}"
    return path


_TYPE_NAMES = {"str", "int", "float", "bool", "list", "dict", "none"}
