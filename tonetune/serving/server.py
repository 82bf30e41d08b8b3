"""``tonetune-serve``: an OpenAI-compatible chat-completions server on LitServe's OpenAI spec.

Streaming and non-streaming answers with token usage, ``/v1/models``, request batching, optional
persona system-prompt injection, and an optional API key read from the environment.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import litserve as ls
from fastapi import HTTPException, Request
from litserve.specs.openai import ChatCompletionRequest, OpenAISpec
from omegaconf import DictConfig

from tonetune.models import as_dict
from tonetune.serving.engine import Engine, PromptTooLongError
from tonetune.serving.engine import Request as GenerationRequest
from tonetune.serving.loading import load_model, system_prompt_for

log = logging.getLogger(__name__)


class PersonaOpenAISpec(OpenAISpec):
    """LitServe's OpenAI spec plus ``GET /v1/models``."""

    def __init__(self, model_name: str) -> None:
        super().__init__()
        self.model_name = model_name

    def pre_setup(self, lit_api: ls.LitAPI) -> None:
        """Register our extra endpoint next to chat completions."""
        super().pre_setup(lit_api)
        self.add_endpoint("/v1/models", self.list_models, ["GET"])

    async def list_models(self) -> dict[str, Any]:
        """The one model this server runs."""
        return {
            "object": "list",
            "data": [
                {
                    "id": self.model_name,
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": "tonetune",
                }
            ],
        }


class PersonaAPI(ls.LitAPI):
    """Chat completions from a tonetune model; a batch of requests is decoded together."""

    def __init__(
        self,
        source: dict[str, Any],
        model_name: str,
        system_prompt: str = "auto",
        default_max_tokens: int = 256,
        api_key_env: str | None = None,
        max_batch_size: int = 8,
        batch_timeout: float = 0.05,
    ) -> None:
        super().__init__(
            max_batch_size=max_batch_size, batch_timeout=batch_timeout, spec=PersonaOpenAISpec(model_name)
        )
        self.source = source
        self.system_prompt_mode = system_prompt
        self.default_max_tokens = default_max_tokens
        self.api_key_env = api_key_env

    def setup(self, device: str) -> None:
        """Load the model once per worker."""
        loaded = load_model(**self.source)
        loaded.model.to(device)
        self.engine = Engine(loaded.model, loaded.tokenizer)
        self.system_prompt = system_prompt_for(loaded, self.system_prompt_mode)

    def authorize(self, request: Request) -> None:
        """With ``api_key_env`` set in the environment, require ``Authorization: Bearer <key>``."""
        key = os.environ.get(self.api_key_env or "")
        if key and request.headers.get("authorization") != f"Bearer {key}":
            raise HTTPException(
                status_code=401, detail="invalid or missing API key (Authorization: Bearer ...)"
            )

    def decode_request(self, request: ChatCompletionRequest) -> GenerationRequest:
        """Messages -> token ids, with the persona prompt injected when configured; 400 on bad input."""
        messages = [{"role": m.role, "content": _text(m.content)} for m in request.messages]
        if not messages:
            raise HTTPException(status_code=400, detail="messages must contain at least one message")
        if self.system_prompt and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        try:
            input_ids = self.engine.tokenize(messages)
        except PromptTooLongError as err:
            raise HTTPException(status_code=400, detail=str(err)) from err
        return GenerationRequest(
            input_ids=input_ids,
            max_new_tokens=request.max_tokens or self.default_max_tokens,
            temperature=request.temperature or 0.0,
            top_p=request.top_p or 1.0,
        )

    def batch(self, inputs: list[GenerationRequest]) -> list[GenerationRequest]:
        """Requests arriving together are generated together."""
        return list(inputs)

    def predict(self, inputs: Any) -> Any:
        """Stream new text per step, then each request's token usage."""
        batched = isinstance(inputs, list)
        requests = inputs if batched else [inputs]
        for deltas in self.engine.stream(requests):
            yield deltas if batched else deltas[0]
        usage = [
            {
                "content": "",
                "prompt_tokens": len(r.input_ids),
                "completion_tokens": len(p.tokens) + (p.finish_reason == "stop"),
                "total_tokens": len(r.input_ids) + len(p.tokens) + (p.finish_reason == "stop"),
            }
            for r, p in zip(requests, self.engine.last, strict=True)
        ]
        yield usage if batched else usage[0]

    def unbatch(self, output: Any) -> Any:
        """Outputs stay per request."""
        return output

    def encode_response(self, outputs: Any) -> Any:
        """Assistant message chunks (the spec turns them into OpenAI responses)."""
        for output in outputs:
            if isinstance(output, list):
                yield [_message(o) for o in output]
            else:
                yield _message(output)


def _message(output: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(output, dict):
        return {"role": "assistant", **output}
    return {"role": "assistant", "content": output}


def _text(content: Any) -> str:
    """OpenAI message content: a string, or a list of parts of which we take the text ones."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else getattr(part, "text", "") or ""
            for part in content
        )
    raise HTTPException(status_code=400, detail="message content must be a string or a list of text parts")


def build_server(cfg: DictConfig) -> ls.LitServer:
    """A LitServer for ``cfg`` (see conf/serve.yaml)."""
    source = {
        "run_dir": cfg.run_dir,
        "model_dir": cfg.model_dir,
        "base_model": None if cfg.run_dir or cfg.model_dir else cfg.base_model,
        "merge_adapter": cfg.merge_adapter,
    }
    source["base_model"] = as_dict(source["base_model"]) if source["base_model"] is not None else None
    api = PersonaAPI(
        source,
        model_name=cfg.model_name or _default_name(cfg),
        system_prompt=cfg.system_prompt,
        default_max_tokens=cfg.default_max_tokens,
        api_key_env=cfg.api_key_env,
        max_batch_size=cfg.max_batch_size,
        batch_timeout=cfg.batch_timeout,
    )
    return ls.LitServer(
        api, accelerator=cfg.accelerator, devices=1, workers_per_device=1, timeout=cfg.timeout
    )


def _default_name(cfg: DictConfig) -> str:
    from pathlib import Path

    if cfg.run_dir:
        return f"tonetune-{Path(cfg.run_dir).name}"
    if cfg.model_dir:
        return Path(cfg.model_dir).name
    return cfg.base_model.name
