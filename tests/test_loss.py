"""The LM-head-on-labelled-positions loss equals each architecture's own loss (softcapping included)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from tonetune.models.loss import CHECKED, IGNORE_INDEX, masked_lm_loss, sequence_logprobs

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
    config = AutoConfig.for_model(model_type, **{**SMALL, **ARCHITECTURES[model_type]})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
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
