"""Batched chat generation with left padding and the KV cache; every answer keeps its stop reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

Conversation = list[dict[str, str]]


@dataclass
class Sampling:
    """How answers are sampled (greedy by default: reproducible evaluations)."""

    max_new_tokens: int = 96
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0


@dataclass
class Generation:
    """One generated answer."""

    text: str
    finish_reason: str
    """``stop``: the model ended its turn; ``length``: it hit ``max_new_tokens``."""
    prompt_tokens: int
    completion_tokens: int


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """End-of-turn tokens: the tokenizer's EOS plus whatever the model's generation config adds."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def render_prompts(tokenizer: PreTrainedTokenizerBase, conversations: Sequence[Conversation]) -> list[str]:
    """Each conversation through the chat template, ending with the assistant's generation prompt."""
    return [
        tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations
    ]


@torch.inference_mode()
def generate_chat(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[Conversation],
    sampling: Sampling | None = None,
    batch_size: int = 16,
    progress: bool = True,
    desc: str = "Generating",
) -> list[Generation]:
    """Answer every conversation, batch by batch (prompts of similar length batched together)."""
    sampling = sampling or Sampling()
    prompts = render_prompts(tokenizer, conversations)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: dict[int, Generation] = {}
    stops = stop_token_ids(model, tokenizer)
    config = _generation_config(sampling, tokenizer, stops)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if sampling.do_sample:
        torch.manual_seed(sampling.seed)
    for batch in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
        answers = _generate_batch(model, tokenizer, [prompts[i] for i in batch], config, stops)
        results.update(zip(batch, answers, strict=True))
    return [results[i] for i in range(len(prompts))]


def _generation_config(
    sampling: Sampling, tokenizer: PreTrainedTokenizerBase, stops: list[int]
) -> GenerationConfig:
    extra = {"temperature": sampling.temperature, "top_p": sampling.top_p} if sampling.do_sample else {}
    return GenerationConfig(
        max_new_tokens=sampling.max_new_tokens,
        do_sample=sampling.do_sample,
        repetition_penalty=sampling.repetition_penalty,
        eos_token_id=stops,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
        **extra,
    )


def _generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    config: GenerationConfig,
    stops: list[int],
) -> list[Generation]:
    encoded = tokenizer(
        prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
    )
    encoded = encoded.to(model.device)
    output = model.generate(**encoded, generation_config=config)
    prompt_width = encoded["input_ids"].shape[1]
    generations = []
    for row, mask in zip(output[:, prompt_width:].tolist(), encoded["attention_mask"], strict=True):
        stop_at = next((i for i, token in enumerate(row) if token in stops), None)
        tokens = row if stop_at is None else row[:stop_at]
        generations.append(
            Generation(
                text=tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                finish_reason="length" if stop_at is None else "stop",
                prompt_tokens=int(mask.sum()),
                completion_tokens=len(tokens) + (stop_at is not None),
            )
        )
    return generations
