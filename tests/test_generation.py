"""The generation engine: each request keeps its own sampling in a batch; finish reasons; adapters."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model

from tests.conftest import compose_config
from tonetune.config import typed
from tonetune.generation.engine import BASE, Engine, GenerationRequest, PromptTooLongError
from tonetune.generation.sampling import Sampling, SamplingError
from tonetune.models.base_models import load_causal_lm, load_tokenizer
from tonetune.schemas import BaseModelConfig

QUESTIONS = ["What do you think about Mars?", "Hi", "Tell me a long story about cats and dogs?", "Why?"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    cfg = compose_config("train", ["base_model=tiny", f"paths.output_dir={tmp_path_factory.mktemp('x')}"])
    spec = typed(BaseModelConfig, cfg.base_model)
    return Engine(load_causal_lm(spec), load_tokenizer(spec))


def requests_for(
    engine: Engine, samplings: list[Sampling], adapter: str | None = None
) -> list[GenerationRequest]:
    return [
        GenerationRequest(engine.encode([{"role": "user", "content": q}]), s, adapter)
        for q, s in zip(QUESTIONS, samplings, strict=True)
    ]


def test_each_request_keeps_its_own_sampling_in_a_batch(engine) -> None:
    greedy = Sampling(max_new_tokens=12)
    hot = Sampling(max_new_tokens=12, temperature=2.0, top_p=0.95, seed=3)
    mixed = requests_for(engine, [greedy, hot, greedy, hot])
    batched = engine.generate(mixed)
    alone = [engine.generate([r])[0] for r in mixed]
    assert [b.text for b in batched] == [a.text for a in alone]  # greedy stays greedy, sampled is its seed's
    first_is_hot = requests_for(engine, [hot, greedy, greedy, hot])
    assert engine.generate(first_is_hot)[1].text == alone[0].text  # the batch's first request sets nothing
    reseeded = [GenerationRequest(r.input_ids, Sampling(12, 2.0, 0.95, seed=4)) for r in mixed[1::2]]
    assert [c.text for c in engine.generate(reseeded)] != [alone[1].text, alone[3].text]


def test_finish_reasons_and_token_counts(engine) -> None:
    limits = [Sampling(max_new_tokens=n) for n in (1, 3, 40, 2)]
    for request, done in zip(
        requests_for(engine, limits), engine.generate(requests_for(engine, limits)), strict=True
    ):
        limit = request.sampling.max_new_tokens
        if done.finish_reason == "length":
            assert done.completion_tokens == limit
        else:
            assert done.finish_reason == "stop" and done.completion_tokens <= limit
        assert done.prompt_tokens == len(request.input_ids)


def test_stream_deltas_add_up_to_the_answer_and_end_once(engine) -> None:
    requests = requests_for(engine, [Sampling(max_new_tokens=n) for n in (4, 9, 6, 2)])
    texts, finishes = [""] * 4, [0] * 4
    for deltas in engine.stream(requests):
        for delta in deltas:
            texts[delta.index] += delta.text
            finishes[delta.index] += delta.finish_reason is not None
    assert finishes == [1, 1, 1, 1]
    assert texts == [c.text for c in engine.generate(requests)]


def test_sampling_settings_are_validated_with_the_field_named() -> None:
    for bad, field in [
        ({"top_p": 0.0}, "top_p"),
        ({"temperature": -1}, "temperature"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
    ]:
        with pytest.raises(SamplingError, match=f"^{field}="):
            Sampling(**bad)


def test_a_prompt_that_fills_the_context_is_refused(engine) -> None:
    with pytest.raises(PromptTooLongError, match="context is 1024 tokens"):
        engine.encode([{"role": "user", "content": "word " * 1500}])


def test_adapters_switch_per_batch_and_base_turns_them_off(engine) -> None:
    greedy = [Sampling(max_new_tokens=8)] * 4
    plain = [c.text for c in engine.generate(requests_for(engine, greedy))]
    torch.manual_seed(0)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(engine.model, lora, adapter_name="elon")
    model.add_adapter("yoda", LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    try:
        two = Engine(model, engine.tokenizer)
        base = [c.text for c in two.generate(requests_for(two, greedy, BASE))]
        a = [c.text for c in two.generate(requests_for(two, greedy, "elon"))]
        b = [c.text for c in two.generate(requests_for(two, greedy, "yoda"))]
        assert base == plain and a != base and b != a
        assert [c.text for c in two.generate(requests_for(two, greedy, "elon"))] == a  # switching back
        mixed = requests_for(two, greedy, "elon")[:2] + requests_for(two, greedy, "yoda")[2:]
        with pytest.raises(ValueError, match="one adapter per batch"):
            two.generate(mixed)
        conversations = [[{"role": "user", "content": q}] for q in QUESTIONS]
        assert [c.text for c in two.chat(conversations, greedy[0], adapter="yoda", progress=False)] == [
            t.strip() for t in b
        ]
    finally:
        model.unload()  # the shared tiny model without adapters again
