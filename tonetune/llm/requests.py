"""What we ask an LLM and what it answers, with a stable key for caching."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from tonetune.generation.sampling import Sampling
from tonetune.persona import Messages

OPTIONAL = {"top_p": 1.0, "repetition_penalty": 1.0}
"""Parameters added after caches existed: left out of a request's key at their default."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request. ``seed`` tells apart samples of the same prompt."""

    messages: tuple[tuple[str, str], ...]
    """(role, content) pairs."""
    temperature: float = 0.8
    max_tokens: int = 128
    seed: int = 0
    json_mode: bool = False
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    """Local models only (OpenAI's API has no such parameter)."""

    @classmethod
    def of(cls, messages: Messages, **params: Any) -> ChatRequest:
        """Build from a list of ``{"role": ..., "content": ...}`` dicts."""
        return cls(messages=tuple((m["role"], m["content"]) for m in messages), **params)

    @property
    def sampling(self) -> Sampling:
        """How this request decodes, as the one ``Sampling`` type (which converts it everywhere)."""
        return Sampling.from_request_params(**asdict(self))

    @property
    def chat(self) -> Messages:
        """The messages as plain dicts."""
        return [{"role": role, "content": content} for role, content in self.messages]

    def to_dict(self) -> dict[str, Any]:
        """Messages as dicts plus every parameter (the later ones only when set: older cache keys hold)."""
        data = {**asdict(self), "messages": self.chat}
        for name, default in OPTIONAL.items():
            if data[name] == default:
                del data[name]
        return data

    def key(self, model: str) -> str:
        """Hash of model, messages and every parameter: equal keys mean an identical request."""
        payload = {"model": model, **self.to_dict()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class ChatResult:
    """An LLM's answer with its token usage; ``cached`` when no request was sent this run."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False

    def bounded(self, max_chars: int | None) -> ChatResult:
        """This result with its text cut to ``max_chars`` (then marked ``length``, like max_tokens)."""
        if max_chars is None or len(self.text) <= max_chars:
            return self
        return replace(self, text=self.text[:max_chars], finish_reason="length")

    def to_json(self) -> str:
        """Serialised for the cache (without the ``cached`` flag)."""
        data = asdict(self)
        data.pop("cached")
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ChatResult:
        """Read back a cached result."""
        return cls(**json.loads(text), cached=True)


def result_from_completion(completion: Any) -> ChatResult:
    """A ChatResult from the SDK's ChatCompletion (the Batch API's bodies are validated into one)."""
    choice = completion.choices[0]
    usage = completion.usage
    return ChatResult(
        text=choice.message.content or "",
        finish_reason=choice.finish_reason or "stop",
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
    )
