"""The generation engine: batched, left-padded decoding with the KV cache, streamed step by step.

Every request keeps its own sampling settings and seed, so an answer does not depend on the batch it
was decoded in; each ends with its own finish reason (``stop``: end of turn, ``length``: its limit,
``cancelled``: its caller withdrew it, ``error``: its scores were not finite). A cancelled or failed
request leaves the batch at the next step; the others go on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from peft import PeftModel
from tqdm.auto import tqdm

from tonetune.generation.attention import use_grouped_attention
from tonetune.generation.folded_lora import folded_lora
from tonetune.generation.kv_cache import preallocated_cache
from tonetune.generation.logits import FAILED, next_tokens
from tonetune.generation.packed_linear import pack_linear_weights
from tonetune.generation.sampling import Sampling
from tonetune.hardware import share_threads
from tonetune.models.base_models import as_torch_dtype
from tonetune.persona import Messages
from tonetune.schemas import DType

GREEDY = Sampling()
BASE = "__base__"
"""The adapter name that means "the base model, every adapter off"."""


class PromptTooLongError(ValueError):
    """A prompt that leaves no room for an answer in the model's context."""


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt (token ids), how to decode it, and which adapter answers (None: as loaded)."""

    input_ids: tuple[int, ...]
    sampling: Sampling = GREEDY
    adapter: str | None = None
    cancelled: threading.Event | None = field(default=None, compare=False, repr=False)
    """Set by the caller to withdraw the request (a client that left): it stops at the next step."""


@dataclass
class Delta:
    """What one request produced at one decoding step."""

    index: int
    """Position of the request in the call's list."""
    text: str
    finish_reason: str | None = None
    """Set on the request's last delta: ``stop``, ``length``, ``cancelled`` or ``error``."""
    completion_tokens: int = 0


@dataclass
class Completion:
    """One finished answer."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    """Generated tokens, the end-of-turn token included when the model stopped by itself."""


@dataclass
class _Row:
    """Decoding state of one request."""

    request: GenerationRequest
    limit: int
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-turn tokens: the tokenizer's EOS plus whatever the model's generation config adds."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def encode_chat(tokenizer: Any, messages: Messages, max_context: int) -> tuple[int, ...]:
    """Token ids of ``messages`` through the chat template, ending with the assistant's generation prompt.

    A control-token string inside a message (a forged ``<|im_start|>system`` turn) stays plain text.
    """
    from tonetune.models.chat_template import encode_messages

    ids = encode_messages(tokenizer, messages, add_generation_prompt=True).input_ids
    if len(ids) >= max_context:
        raise PromptTooLongError(
            f"the prompt is {len(ids)} tokens; this model's context is {max_context} tokens"
        )
    return tuple(ids)


def cast_for_decoding(model: Any, dtype: DType | None) -> None:
    """Cast ``model``'s parameters to ``dtype`` in place (None, or a 4-bit model: left as they are).

    Only parameters: buffers such as the rotary frequencies stay in float32, as ``from_pretrained``
    keeps them (rounded to bf16 they shift every position's angle).
    """
    if dtype is None or getattr(model, "hf_quantizer", None) is not None:
        return
    weights = as_torch_dtype(dtype)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.is_floating_point() and parameter.dtype != weights:
                parameter.data = parameter.data.to(weights)


class Engine:
    """A causal LM (optionally a PeftModel with several adapters) and its tokenizer, ready to answer.

    ``dtype`` casts the model's weights in place for decoding (``cast_for_decoding``; None: as loaded),
    transformers' ``sdpa`` attention gives way to its grouped-query form (``use_grouped_attention``),
    bf16 linear weights are packed for oneDNN once (``pack_linear_weights``), and a batch for one
    LoRA adapter decodes with the adapter folded into them (``folded_lora``).
    """

    def __init__(
        self, model: Any, tokenizer: Any, max_context: int | None = None, dtype: DType | None = None
    ) -> None:
        cast_for_decoding(model, dtype)
        use_grouped_attention(model)
        pack_linear_weights(model)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.lock = threading.Lock()
        """Held by whoever streams on this engine from another thread (the arena's page)."""
        self.stops = set(stop_token_ids(model, tokenizer))
        config = model.config
        self.max_context = max_context or getattr(config, "max_position_embeddings", 2048)

    @property
    def dtype(self) -> str:
        """The dtype the weights decode in, by name (``float32``, ``bfloat16``)."""
        return str(self.model.dtype).removeprefix("torch.")

    @property
    def adapters(self) -> list[str]:
        """The adapters a request may name (besides ``BASE``)."""
        return list(self.model.peft_config) if isinstance(self.model, PeftModel) else []

    def encode(self, messages: Messages) -> tuple[int, ...]:
        """Chat template + generation prompt; raises PromptTooLongError when nothing fits after it."""
        return encode_chat(self.tokenizer, messages, self.max_context)

    def stream(self, requests: Sequence[GenerationRequest]) -> Iterator[list[Delta]]:
        """Decode ``requests`` together (one adapter per call).

        After every step, yield the deltas of the requests that produced text or finished.
        """
        if not requests:
            return
        adapters = {r.adapter for r in requests}
        if len(adapters) > 1:
            raise ValueError(f"one adapter per batch, got {sorted(map(str, adapters))}")
        adapter = adapters.pop()
        with torch.inference_mode(), self.using(adapter), folded_lora(self.model, adapter):
            yield from self._decode([self._row(r) for r in requests])

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Decode ``requests`` together and return each finished answer."""
        texts = [""] * len(requests)
        finals: dict[int, Delta] = {}
        for deltas in self.stream(requests):
            for delta in deltas:
                texts[delta.index] += delta.text
                if delta.finish_reason is not None:
                    finals[delta.index] = delta
        return [
            Completion(texts[i], finals[i].finish_reason, len(r.input_ids), finals[i].completion_tokens)
            for i, r in enumerate(requests)
        ]

    def chat(
        self,
        conversations: Sequence[Messages],
        sampling: Sampling | Sequence[Sampling] = GREEDY,
        adapter: str | None = None,
        batch_size: int = 16,
        progress: bool = True,
        desc: str = "Generating",
    ) -> list[Completion]:
        """Answer every conversation (prompts of similar length batched together); texts stripped."""
        samplings = [sampling] * len(conversations) if isinstance(sampling, Sampling) else list(sampling)
        requests = [
            GenerationRequest(self.encode(c), s, adapter)
            for c, s in zip(conversations, samplings, strict=True)
        ]
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].input_ids))
        results: dict[int, Completion] = {}
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for batch in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
            for index, completion in zip(batch, self.generate([requests[i] for i in batch]), strict=True):
                completion.text = completion.text.strip()
                results[index] = completion
        return [results[i] for i in range(len(requests))]

    def using(self, name: str | None) -> contextlib.AbstractContextManager:
        """A context in which the model answers with adapter ``name`` (``BASE``: none; None: as set)."""
        if name is None:
            return contextlib.nullcontext()
        if not isinstance(self.model, PeftModel):
            raise ValueError(f"adapter {name!r} requested from a model without adapters")
        if name == BASE:
            return self.model.disable_adapter()
        self.model.set_adapter(name)
        return contextlib.nullcontext()

    def _row(self, request: GenerationRequest) -> _Row:
        room = self.max_context - len(request.input_ids)
        if room < 1:
            raise PromptTooLongError(
                f"the prompt is {len(request.input_ids)} tokens; this model's context is {self.max_context}"
            )
        generator = None
        if not request.sampling.greedy:
            generator = torch.Generator(self.model.device).manual_seed(request.sampling.seed)
        return _Row(request, min(request.sampling.max_new_tokens, room), generator)

    def _decode(self, rows: list[_Row]) -> Iterator[list[Delta]]:
        """Step all rows together; a finished row leaves the batch (and the KV cache) at once."""
        prompts = [r.request.input_ids for r in rows]
        ids, mask = self._left_padded(prompts)
        seen = self._seen(prompts)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        cache = preallocated_cache(self.model.config, ids.shape[1] + max(r.limit for r in rows))
        live = list(range(len(rows)))  # indices into rows, in batch order
        while live:
            share_threads()  # this process's share of the cores (re-read at most once a second)
            logits = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1, :]
            active = [rows[i] for i in live]
            chosen = next_tokens(
                logits, seen, [r.request.sampling for r in active], [r.generator for r in active]
            )
            deltas = [
                d
                for i, token in zip(live, chosen.tolist(), strict=True)
                if (d := self._advance(i, rows[i], token))
            ]
            deltas += self._withdrawn(live, rows)
            if deltas:
                yield deltas
            keep = [k for k, i in enumerate(live) if rows[i].finish_reason is None]
            if not keep:
                return
            if len(keep) < len(live):
                selected = torch.tensor(keep, dtype=torch.long, device=ids.device)
                cache.batch_select_indices(selected)
                chosen, mask, positions = chosen[selected], mask[selected], positions[selected]
                seen = seen[selected]
                live = [live[k] for k in keep]
            ids = chosen[:, None]
            seen = torch.cat([seen, ids], dim=1)
            mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
            positions = positions[:, -1:] + 1

    def _advance(self, index: int, row: _Row, token: int) -> Delta | None:
        """Take one token for ``row``; the delta it causes, if any."""
        if row.finish_reason is not None:
            return None
        if token == FAILED:
            row.finish_reason = "error"
            return Delta(index, "", "error", len(row.tokens))
        if token in self.stops:
            row.finish_reason = "stop"
            return Delta(index, "", "stop", len(row.tokens) + 1)
        row.tokens.append(token)
        text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        if len(row.tokens) >= row.limit:
            row.finish_reason = "length"
        elif text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return None
        delta, row.text = text[len(row.text) :], text
        if not delta and row.finish_reason is None:
            return None
        return Delta(index, delta, row.finish_reason, len(row.tokens))

    @staticmethod
    def _withdrawn(live: list[int], rows: list[_Row]) -> list[Delta]:
        """Finish the live rows whose caller cancelled them; their last deltas."""
        deltas = []
        for i in live:
            row = rows[i]
            cancelled = row.request.cancelled
            if row.finish_reason is None and cancelled is not None and cancelled.is_set():
                row.finish_reason = "cancelled"
                deltas.append(Delta(i, "", "cancelled", len(row.tokens)))
        return deltas

    def _seen(self, prompts: Sequence[tuple[int, ...]]) -> torch.Tensor:
        """Each row's prompt tokens for the repetition penalty, a shorter one led by its own first token."""
        width = max(len(p) for p in prompts)
        rows = [[p[0]] * (width - len(p)) + list(p) for p in prompts]
        return torch.tensor(rows, device=self.model.device)

    def _left_padded(self, prompts: Sequence[tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(len(p) for p in prompts)
        ids = [[pad] * (width - len(p)) + list(p) for p in prompts]
        mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
        device = self.model.device
        return torch.tensor(ids, device=device), torch.tensor(mask, device=device)
