"""The LM-head-on-labelled-positions loss equals each architecture's own loss.

Softcapping included; and a preference pair scored with its prompt once equals its two rows.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from tonetune.models.loss import CHECKED, IGNORE_INDEX, masked_lm_loss, sequence_logprobs
from tonetune.models.shared_prompt import can_share, pair_logprobs, share_prompts

SMALL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 512,
    "max_position_embeddings": 256,
}
ARCHITECTURES = {
    "llama": {},  # SmolLM2, Llama 3.x (and tonetune's tiny model)
    "qwen2": {},
    "mistral": {},
    "phi3": {"pad_token_id": 0},
    "gemma2": {"final_logit_softcapping": 30.0, "head_dim": 16, "query_pre_attn_scalar": 16},
    "cohere": {"logit_scale": 0.125},
    "qwen3": {"head_dim": 16},
    "gemma3_text": {"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 64},
    "granite": {"logits_scaling": 4.0},
    "gpt2": {"n_embd": 64, "n_layer": 2, "n_head": 4},  # not checked: the model's own forward is used
}


def batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(3, 512, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding
    labels = ids.clone()
    labels[:, :6] = IGNORE_INDEX  # the prompt
    labels[mask == 0] = IGNORE_INDEX
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_masked_loss_equals_the_models_own_loss(model_type: str) -> None:
    model = tiny(model_type).eval()
    data = batch()
    with torch.no_grad():
        ours, n_tokens = masked_lm_loss(model, data)
        theirs = model(**data).loss
        logps, counts = sequence_logprobs(model, data)
    assert n_tokens == int((data["labels"][:, 1:] != IGNORE_INDEX).sum()) == int(counts.sum())
    assert torch.allclose(ours, theirs, atol=1e-5), (model_type, float(ours), float(theirs))
    assert torch.allclose(-logps.sum() / counts.sum(), theirs, atol=1e-5)
    assert (model_type in CHECKED) == (model_type != "gpt2")


def test_softcapping_matters_so_the_check_can_fail() -> None:
    config = AutoConfig.for_model(
        "gemma2", **{**SMALL, **ARCHITECTURES["gemma2"], "final_logit_softcapping": 0.5}
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    data = batch()
    with torch.no_grad():
        hidden = model.get_decoder()(
            input_ids=data["input_ids"], attention_mask=data["attention_mask"]
        ).last_hidden_state
        keep = data["labels"][:, 1:] != IGNORE_INDEX
        raw = torch.nn.functional.cross_entropy(
            model.lm_head(hidden[:, :-1][keep]), data["labels"][:, 1:][keep]
        )
        assert not torch.allclose(raw, model(**data).loss, atol=1e-3)  # without the cap: wrong
        assert torch.allclose(masked_lm_loss(model, data)[0], model(**data).loss, atol=1e-5)


SHARED_LAYOUT = {"llama", "qwen2", "qwen3", "mistral", "phi3", "cohere", "gemma3_text", "granite"}
"""The architectures that score a pair in one row (gemma2 runs eager attention, gpt2 is unchecked)."""


def pair_batch(
    prompt_lengths=(3, 4, 5, 6), answer_lengths=(3, 7), left_padding=False
) -> dict[str, torch.Tensor]:
    """A stacked (chosen; rejected) batch as the preference collate builds it: prompts of several
    lengths shared by both answers, answers of other lengths (chosen, rejected), padded."""
    generator = torch.Generator().manual_seed(2)
    prompts = [torch.randint(3, 512, (n,), generator=generator).tolist() for n in prompt_lengths]
    rows: list[tuple[list[int], list[int]]] = []
    for side_length in answer_lengths:
        for i, prompt in enumerate(prompts):
            answer = torch.randint(3, 512, (side_length + i,), generator=generator).tolist()
            rows.append((prompt + answer, [IGNORE_INDEX] * len(prompt) + answer))
    width = max(len(ids) for ids, _ in rows)

    def padded(values: list[int], fill: int) -> list[int]:
        padding = [fill] * (width - len(values))
        return padding + values if left_padding else values + padding

    return {
        "input_ids": torch.tensor([padded(ids, 0) for ids, _ in rows]),
        "attention_mask": torch.tensor([padded([1] * len(ids), 0) for ids, _ in rows]),
        "labels": torch.tensor([padded(labels, IGNORE_INDEX) for _, labels in rows]),
    }


def tiny(model_type: str, **changes) -> torch.nn.Module:
    config = AutoConfig.for_model(model_type, **{**SMALL, **ARCHITECTURES[model_type], **changes})
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_a_pair_scored_with_its_prompt_once_equals_its_two_rows(model_type: str) -> None:
    model = tiny(model_type).eval()
    data = pair_batch()
    shared = share_prompts(data)
    assert shared["input_ids"].shape[0] == 4
    assert shared["attention_mask"].shape == (
        4,
        1,
        shared["input_ids"].shape[1],
        shared["input_ids"].shape[1],
    )
    assert can_share(model.config, data["input_ids"].shape[1]) == (model_type in SHARED_LAYOUT)
    with torch.no_grad():
        rows, row_counts = sequence_logprobs(model, data)
        pairs, pair_counts = pair_logprobs(model, data)
    assert torch.equal(row_counts, pair_counts)
    assert torch.allclose(rows, pairs, atol=1e-4), (model_type, rows, pairs)


@pytest.mark.parametrize(
    "layout",
    [
        {"left_padding": True},
        {"prompt_lengths": (1, 1, 2, 1)},  # a one-token prompt: nothing before the answers' opening token
        {"answer_lengths": (9, 2)},  # chosen answers longer than the rejected
    ],
    ids=["left-padded", "one-token-prompt", "chosen-longer"],
)
def test_the_shared_layout_holds_for_other_batches(layout: dict) -> None:
    model = tiny("llama").eval()
    data = pair_batch(**layout)
    assert share_prompts(data) is not None and can_share(model.config, data["input_ids"].shape[1])
    with torch.no_grad():
        assert torch.allclose(sequence_logprobs(model, data)[0], pair_logprobs(model, data)[0], atol=1e-4)


def test_shared_prompt_gradients_equal_the_stacked_rows() -> None:
    model = tiny("llama")
    data = pair_batch()
    assert can_share(model.config, data["input_ids"].shape[1])
    grads = []
    for score in (sequence_logprobs, pair_logprobs):
        model.zero_grad()
        logps, _ = score(model, data)
        (logps[:4] - logps[4:]).sigmoid().log().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_pairs_without_a_common_prompt_are_scored_row_by_row() -> None:
    data = pair_batch()
    first = int(data["input_ids"][0, 0])
    data["input_ids"][4, 0] = (
        3 if first != 3 else 4
    )  # the first rejected row no longer starts like its chosen
    assert share_prompts(data) is None
    model = tiny("llama").eval()
    with torch.no_grad():
        assert torch.allclose(pair_logprobs(model, data)[0], sequence_logprobs(model, data)[0])


def test_a_sliding_window_shorter_than_the_batch_keeps_the_two_rows() -> None:
    data = pair_batch()
    width = data["input_ids"].shape[1]
    assert can_share(tiny("mistral", sliding_window=width).config, width)
    model = tiny("mistral", sliding_window=4).eval()
    assert not can_share(model.config, width)
    with torch.no_grad():
        assert torch.allclose(pair_logprobs(model, data)[0], sequence_logprobs(model, data)[0])
