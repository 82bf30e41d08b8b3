"""The fast decode path: transformers' answers from a preallocated KV cache, batched penalties, bf16."""

from __future__ import annotations

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor

from tests.conftest import compose_config
from tonetune.config import typed
from tonetune.generation.attention import GROUPED_SDPA
from tonetune.generation.engine import Engine, GenerationRequest
from tonetune.generation.kv_cache import PreallocatedLayer
from tonetune.generation.logits import FAILED, next_tokens, penalise_repetition
from tonetune.generation.sampling import Sampling
from tonetune.hardware import best_decode_dtype, cpu_flags
from tonetune.models.base_models import load_causal_lm, load_tokenizer
from tonetune.schemas import BaseModelConfig, DType

QUESTIONS = ["What do you think about Mars?", "Hi", "Tell me a long story about cats and dogs?", "Why?"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = compose_config("train", ["base_model=tiny", f"paths.output_dir={tmp_path_factory.mktemp('x')}"])
    spec = typed(BaseModelConfig, cfg.base_model)
    return spec, load_tokenizer(spec)


def lively(spec: BaseModelConfig) -> torch.nn.Module:
    """The tiny model with larger random weights: its greedy answers depend on the prompt (at the
    default initialisation every prompt gets the same newlines)."""
    model = load_causal_lm(spec)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model


def test_batched_answers_are_transformers_generate_one_prompt_at_a_time(tiny) -> None:
    """Prompts of different lengths and budgets (rows leave the batch), a repetition penalty per row.

    The engine decodes with grouped-query attention; the reference is a fresh copy on transformers' own."""
    spec, tokenizer = tiny
    engine = Engine(lively(spec), tokenizer)
    reference = lively(spec)
    assert engine.model.config._attn_implementation == GROUPED_SDPA
    assert reference.config._attn_implementation == "sdpa" and reference.config.num_key_value_heads == 2
    settings = [(20, 1.3), (3, 1.0), (12, 2.0), (7, 1.15)]
    requests = [
        GenerationRequest(engine.encode([{"role": "user", "content": q}]), Sampling(n, repetition_penalty=p))
        for q, (n, p) in zip(QUESTIONS, settings, strict=True)
    ]
    batched = engine.generate(requests)
    for request, answer, (n, penalty) in zip(requests, batched, settings, strict=True):
        out = reference.generate(
            torch.tensor([request.input_ids]),
            max_new_tokens=n,
            do_sample=False,
            repetition_penalty=penalty,
            eos_token_id=sorted(engine.stops),
            pad_token_id=tokenizer.pad_token_id,
        )[0, len(request.input_ids) :].tolist()
        assert answer.text == tokenizer.decode(out, skip_special_tokens=True)
        assert answer.completion_tokens == len(out)
    assert len({a.text for a in batched}) == len(batched)  # the prompts matter


def test_each_row_gets_its_own_penalty_as_transformers_computes_it() -> None:
    logits = torch.randn(3, 50)
    seen = torch.tensor([[4, 4, 7, 9], [1, 2, 3, 4], [0, 0, 0, 5]])  # shorter rows repeat their own token
    penalties = [1.0, 1.3, 2.0]
    ours = penalise_repetition(logits, seen, torch.tensor(penalties))
    for row, penalty in enumerate(penalties):
        theirs = RepetitionPenaltyLogitsProcessor(penalty)(seen[row : row + 1], logits[row : row + 1].clone())
        assert torch.equal(ours[row], theirs[0])
    assert torch.equal(ours[0], logits[0]) and not torch.equal(ours[1], logits[1])


def test_a_row_with_unusable_scores_fails_alone() -> None:
    logits = torch.randn(5, 20)
    logits[0, 3] = float("nan")
    logits[1, 4] = float("inf")
    logits[2] = float("-inf")
    logits[3, :10] = float("-inf")  # banned tokens are fine while one is left
    chosen = next_tokens(logits, torch.zeros(5, 1, dtype=torch.long), [Sampling()] * 5, [None] * 5)
    assert chosen[:3].tolist() == [FAILED] * 3
    assert (
        chosen[3] == logits[3].argmax()
        and chosen[4]
        == penalise_repetition(
            logits[4:], torch.zeros(1, 1, dtype=torch.long), torch.tensor([Sampling().repetition_penalty])
        ).argmax()
    )


def test_the_kv_cache_refuses_more_positions_than_it_holds() -> None:
    layer = PreallocatedLayer(capacity=4)
    rows = torch.arange(2.0)[:, None, None, None].expand(2, 1, 3, 8)
    keys, values = layer.update(rows, 10 + rows)
    assert torch.equal(keys, rows) and torch.equal(values, 10 + rows) and layer.get_seq_length() == 3
    layer.batch_select_indices(torch.tensor([1]))
    assert torch.equal(layer.keys, rows[1:]) and torch.equal(layer.values, 10 + rows[1:])
    with pytest.raises(ValueError, match="holds 4 positions; 5"):
        layer.update(torch.ones(1, 1, 2, 8), torch.ones(1, 1, 2, 8))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx512f", "avx512_bf16"}, "bfloat16"),
        ({"amx_bf16"}, "bfloat16"),
        ({"avx512f", "avx2"}, "float32"),  # emulated bf16 is slower than fp32
        (set(), "float32"),  # the engine decodes on the CPU, whatever GPU is there
    ],
)
def test_decoding_dtype_follows_what_the_cpu_computes_natively(flags, expected) -> None:
    assert best_decode_dtype(frozenset(flags)) == expected


def test_the_evaluation_decodes_in_the_machines_dtype_and_an_override_wins(tmp_path) -> None:
    native = any(flag in cpu_flags() for flag in ("avx512_bf16", "amx_bf16"))
    run_dir = f"run_dir={tmp_path}"
    cfg = compose_config("evaluate", [run_dir, f"paths.output_dir={tmp_path}"])
    assert cfg.evaluation.dtype == ("bfloat16" if native else "float32")
    for command in ("serve", "chat"):
        assert compose_config(command, [f"paths.output_dir={tmp_path}"]).dtype == cfg.evaluation.dtype
    cfg = compose_config("evaluate", [run_dir, f"paths.output_dir={tmp_path}", "evaluation.dtype=float32"])
    assert cfg.evaluation.dtype == "float32"


def test_float32_keeps_the_reference_answers_and_bf16_casts_the_weights(tiny) -> None:
    spec, tokenizer = tiny
    chats = [[{"role": "user", "content": q}] for q in QUESTIONS]
    greedy = Sampling(max_new_tokens=10)
    reference = [a.text for a in Engine(lively(spec), tokenizer).chat(chats, greedy, progress=False)]
    full = Engine(lively(spec), tokenizer, dtype=DType.float32)
    assert [a.text for a in full.chat(chats, greedy, progress=False)] == reference
    half = Engine(lively(spec), tokenizer, dtype=DType.bfloat16)
    assert {p.dtype for p in half.model.parameters()} == {torch.bfloat16} and half.dtype == "bfloat16"
    # buffers keep float32, as from_pretrained(dtype=bfloat16) keeps them: rounded, rotary angles drift
    assert {b.dtype for n, b in half.model.named_buffers() if "inv_freq" in n} == {torch.float32}
    answers = half.chat(chats, greedy, progress=False)
    assert all(a.completion_tokens > 0 and a.finish_reason in {"stop", "length"} for a in answers)


def test_a_sliding_window_model_decodes_as_transformers_generate(tiny) -> None:
    """Sliding-window layers keep transformers' own cache; the answers stay generate's."""
    from transformers import MistralConfig, MistralForCausalLM

    _, tokenizer = tiny
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=4,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    model = MistralForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
    engine = Engine(model, tokenizer)
    requests = [
        GenerationRequest(
            engine.encode([{"role": "user", "content": q}]), Sampling(n, repetition_penalty=1.2)
        )
        for q, n in zip(QUESTIONS, (16, 4, 10, 7), strict=True)
    ]
    for request, answer in zip(requests, engine.generate(requests), strict=True):
        out = model.generate(
            torch.tensor([request.input_ids]),
            max_new_tokens=request.sampling.max_new_tokens,
            do_sample=False,
            repetition_penalty=1.2,
            eos_token_id=sorted(engine.stops),
            pad_token_id=tokenizer.pad_token_id,
        )[0, len(request.input_ids) :].tolist()
        assert answer.text == tokenizer.decode(out, skip_special_tokens=True)


def test_a_local_clients_cache_key_names_a_non_reference_dtype(tmp_path) -> None:
    from tonetune.errors import ConfigError
    from tonetune.llm.local import LocalClient

    cfg = compose_config("synthesize", ["teacher=local", f"paths.output_dir={tmp_path}"])
    name = "local:smollm2-135m-instruct"
    assert LocalClient(cfg.teacher.base_model, dtype="float32").model == name
    assert LocalClient(cfg.teacher.base_model, dtype="bfloat16").model == f"{name}:bfloat16"
    assert (
        LocalClient(cfg.teacher.base_model, variant="nf4", dtype="bfloat16").model == f"{name}:nf4:bfloat16"
    )
    with pytest.raises(ConfigError, match=r"teacher\.dtype='bf16' is not one of float32, bfloat16, float16"):
        LocalClient(cfg.teacher.base_model, dtype="bf16")
