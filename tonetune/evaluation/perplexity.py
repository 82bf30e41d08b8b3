"""How natural the reference answers are to a model: their negative log-likelihood, per answer.

Perplexity over a question set is exp(total NLL / total tokens); keeping NLL and token counts per
answer lets it carry a bootstrap interval like every other metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerBase

from tonetune.data.chat import tokenize_conversation
from tonetune.models.loss import IGNORE_INDEX, sequence_logprobs
from tonetune.persona import single_turn


@torch.inference_mode()
def answer_nll(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    system_prompt: str | None = None,
    batch_size: int = 16,
    max_length: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """(NLL sum, token count) of each answer's tokens (end-of-turn included), given its question."""
    collate = DataCollatorForSeq2Seq(
        tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt"
    )
    features = []
    for question, answer in zip(questions, answers, strict=True):
        chat = [*single_turn(question, system_prompt), {"role": "assistant", "content": answer}]
        encoded = tokenize_conversation(tokenizer, chat, max_length)
        encoded.pop("truncated")
        features.append(encoded)
    nll, tokens = [], []
    for start in range(0, len(features), batch_size):
        batch = collate(features[start : start + batch_size]).to(model.device)
        logps, counts = sequence_logprobs(model, batch)
        nll.extend((-logps).tolist())
        tokens.extend(counts.tolist())
    return np.array(nll, dtype=float), np.array(tokens, dtype=float)
