"""A model in this process as an LLM client: the embedded SmolLM2 by default, batched on the engine.

Fine-tuning a model on its own persona-prompted answers is context distillation: the tone moves
from the prompt into the weights. A larger teacher writes better data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from tqdm.auto import tqdm

from tonetune.config import typed
from tonetune.errors import ConfigError
from tonetune.generation.engine import Engine, GenerationRequest
from tonetune.generation.sampling import Sampling
from tonetune.llm.cache import ResponseCache
from tonetune.llm.client import LLMClient, OnResult
from tonetune.llm.requests import ChatRequest, ChatResult
from tonetune.schemas import BaseModelConfig, DType


class LocalClient(LLMClient):
    """Answers with a base model loaded here; every request decodes with its own seed.

    Streamed answers hold the engine's lock: one stream decodes on an engine at a time.

    Args:
        base_model: Which model (loaded on first use unless ``engine`` is given).
        batch_size: Requests decoded together.
        dtype: The weights' dtype while decoding (None: the base model's own).
        engine: An engine already holding this model (the evaluation shares its copy).
        adapter: Which adapter of ``engine`` answers (``BASE`` for the bare base model).
    """

    def __init__(
        self,
        base_model: Any,
        batch_size: int = 16,
        cache: ResponseCache | None = None,
        prices: dict[str, float] | None = None,
        role: str = "teacher",
        engine: Engine | None = None,
        adapter: str | None = None,
        variant: str = "",
        dtype: DType | str | None = None,
    ) -> None:
        """``variant`` tells apart copies of one base model that answer differently (e.g. ``nf4``)."""
        super().__init__(cache, prices, role)
        self.base_model = typed(BaseModelConfig, base_model)
        self.dtype = _dtype(dtype, role)
        # the cache tells apart answers decoded otherwise than the fp32 reference (4-bit, bf16)
        decoding = engine.dtype if engine else DType(self.dtype or self.base_model.dtype).value
        tags = [tag for tag in (variant, "" if decoding == "float32" else decoding) if tag]
        self.model = ":".join([f"local:{self.base_model.name}", *tags])
        self.batch_size = batch_size
        self._engine = engine
        self.adapter = adapter

    in_process = True

    def engine_for(self, base_model: Any) -> Engine | None:
        """This client's engine when it holds ``base_model`` (the same model name)."""
        return self.engine() if typed(BaseModelConfig, base_model).name == self.base_model.name else None

    def stream(self, request: ChatRequest) -> Iterator[str]:
        """Decode one request token by token on the engine (its adapter; the request's sampling)."""
        engine = self.engine()
        with engine.lock:
            prompt = GenerationRequest(engine.encode(request.chat), request.sampling, self.adapter)
            for deltas in engine.stream([prompt]):
                yield from (delta.text for delta in deltas)

    def engine(self) -> Engine:
        """The engine, loading the model on first use."""
        if self._engine is None:
            from tonetune.models.base_models import load_causal_lm, load_tokenizer

            model, tokenizer = load_causal_lm(self.base_model), load_tokenizer(self.base_model)
            self._engine = Engine(model, tokenizer, dtype=self.dtype)
        return self._engine

    def _complete_missing(self, requests: list[ChatRequest], store: OnResult, desc: str) -> None:
        """Decode in batches of similar prompt length; each batch is cached as soon as it is done."""
        engine = self.engine()
        prompts = [
            GenerationRequest(engine.encode(r.chat), self._sampling(r), self.adapter) for r in requests
        ]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i].input_ids))
        with tqdm(total=len(requests), desc=desc, unit="req") as progress:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                for index, answer in zip(chunk, engine.generate([prompts[i] for i in chunk]), strict=True):
                    result = ChatResult(
                        answer.text.strip(),
                        answer.finish_reason,
                        answer.prompt_tokens,
                        answer.completion_tokens,
                    )
                    store(index, result)
                progress.update(len(chunk))

    def _sampling(self, request: ChatRequest) -> Sampling:
        """The request's temperature and limit; its seed from its key, so answers never depend on batches."""
        return replace(request.sampling, seed=int(request.key(self.model)[:8], 16))

    def close(self) -> None:
        """Free the model (unless it was lent by the caller)."""
        self._engine = None


def _dtype(value: DType | str | None, role: str) -> DType | None:
    """``<role>.dtype`` checked: a DType, or None for the base model's own."""
    if value is None:
        return None
    try:
        return DType(value)
    except ValueError:
        names = ", ".join(d.value for d in DType)
        raise ConfigError(f"{role}.dtype={value!r} is not one of {names}") from None
