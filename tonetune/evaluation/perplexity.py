"""Perplexity of reference answers under a model: how natural the teacher's answers are to it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerBase

from tonetune.data.chat import IGNORE_INDEX, tokenize_conversation, with_system_prompt
from tonetune.training.module import masked_lm_loss


@torch.inference_mode()
def answer_perplexity(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    system_prompt: str | None = None,
    batch_size: int = 16,
    max_length: int = 512,
) -> float:
    """exp(mean negative log-likelihood) of the answer tokens (end-of-turn included), given the question."""
    collate = DataCollatorForSeq2Seq(
        tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt"
    )
    features = []
    for question, answer in zip(questions, answers, strict=True):
        chat = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        encoded = tokenize_conversation(tokenizer, with_system_prompt(chat, system_prompt), max_length)
        encoded.pop("truncated")
        features.append(encoded)
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(features), batch_size):
        batch = collate(features[start : start + batch_size]).to(model.device)
        loss, n_tokens = masked_lm_loss(model, batch)
        total_nll += float(loss) * n_tokens
        total_tokens += n_tokens
    return math.exp(total_nll / total_tokens) if total_tokens else float("nan")
