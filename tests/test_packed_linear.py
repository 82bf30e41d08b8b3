"""bf16 linear layers packed once for oneDNN: the same products, kept current, adapters untouched,
and one LoRA adapter folded into them while it decodes."""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from torch import nn

from tests.test_decode_path import lively, tiny  # noqa: F401 (the fixture)
from tonetune.generation.engine import BASE, Engine, GenerationRequest, cast_for_decoding
from tonetune.generation.folded_lora import foldable_layers, folded_lora
from tonetune.generation.packed_linear import PackedLinear, _Fold, can_pack, pack_linear_weights
from tonetune.generation.sampling import Sampling
from tonetune.schemas import DType

pytestmark = pytest.mark.skipif(not can_pack(torch.bfloat16), reason="this CPU has no bf16 oneDNN kernels")

# two bf16 roundings apart at most: the packed kernel and F.linear accumulate in different orders
BF16 = {"rtol": 2e-2, "atol": 2e-2}


def packed_copy(layer: nn.Linear) -> nn.Linear:
    twin = nn.Linear(layer.in_features, layer.out_features, dtype=torch.bfloat16)
    twin.load_state_dict(layer.state_dict())
    assert pack_linear_weights(twin) == 1 and isinstance(twin, PackedLinear)
    return twin


def test_a_packed_layer_computes_f_linear_and_follows_its_weight() -> None:
    generator = torch.Generator().manual_seed(0)
    layer = nn.Linear(64, 48, dtype=torch.bfloat16)
    packed = packed_copy(layer)
    x = torch.randn(5, 3, 64, generator=generator).to(torch.bfloat16)
    with torch.inference_mode():
        torch.testing.assert_close(packed(x), F.linear(x, layer.weight, layer.bias), **BF16)
    with torch.no_grad():  # an in-place edit (load_state_dict, an optimiser step) ...
        packed.weight.mul_(-1)
    with torch.inference_mode():
        torch.testing.assert_close(packed(x), F.linear(x, -layer.weight, layer.bias), **BF16)
    packed.weight.data = layer.weight.data.clone() * 2  # ... or a new tensor (a cast)
    with torch.inference_mode():
        torch.testing.assert_close(packed(x), F.linear(x, 2 * layer.weight, layer.bias), **BF16)


def test_a_packed_layer_still_trains() -> None:
    """With gradients on, the plain product runs: the weight gets its gradient."""
    packed = packed_copy(nn.Linear(16, 8, dtype=torch.bfloat16))
    packed(torch.randn(4, 16).to(torch.bfloat16)).sum().backward()
    assert packed.weight.grad is not None and packed.weight.grad.abs().sum() > 0


def test_float32_weights_are_not_packed(tiny) -> None:  # noqa: F811
    spec, tokenizer = tiny
    engine = Engine(lively(spec), tokenizer)
    assert not any(isinstance(m, PackedLinear) for m in engine.model.modules())


def twins(tiny) -> tuple[Any, Engine, torch.Tensor]:  # noqa: F811
    """The same random LoRA twice: plain bf16 PEFT (the expected logits) and in a bf16 engine; a prompt."""
    spec, tokenizer = tiny
    torch.manual_seed(0)
    plain = get_peft_model(lively(spec), lora()).to(torch.bfloat16).eval()
    torch.manual_seed(0)
    engine = Engine(get_peft_model(lively(spec), lora()), tokenizer, dtype=DType.bfloat16)
    ids = torch.tensor([engine.encode([{"role": "user", "content": "What about Mars?"}])])
    return plain, engine, ids


def lora() -> LoraConfig:
    return LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)


def assert_adapter_logits(got: torch.Tensor, plain: Any, ids: torch.Tensor) -> None:
    """``got`` is ``plain``'s adapter to bf16 rounding (4 layers, logits up to ~4), far from its base."""
    with torch.inference_mode():
        expected = plain(input_ids=ids).logits
        with plain.disable_adapter():
            without_adapter = plain(input_ids=ids).logits
    drift, adapter_effect = (got - expected).abs().max(), (expected - without_adapter).abs().max()
    assert drift < 0.1 and adapter_effect > 10 * drift


def test_a_bf16_engine_packs_the_base_and_keeps_the_adapter(tiny) -> None:  # noqa: F811
    """The base layers are packed, LoRA's own are not, and the adapter still shapes the logits."""
    plain, engine, ids = twins(tiny)
    names = {n for n, m in engine.model.named_modules() if isinstance(m, PackedLinear)}
    assert names and not any("lora_" in n for n in names)
    assert any(n.endswith("q_proj.base_layer") for n in names) and any(n.endswith("down_proj") for n in names)
    with torch.inference_mode():
        packed = engine.model(input_ids=ids).logits
    assert_adapter_logits(packed, plain, ids)


def test_a_folded_adapter_answers_as_the_adapter_without_its_products(tiny) -> None:  # noqa: F811
    """One adapter's delta folded into the packed weights: its logits, no LoRA products, kept current."""
    plain, engine, ids = twins(tiny)
    model, products = engine.model, []
    for name, module in model.named_modules():
        if name.endswith("lora_A.default"):
            module.register_forward_hook(lambda *_: products.append(1))

    def compare() -> None:
        with torch.inference_mode(), folded_lora(model, "default") as folded:
            got = model(input_ids=ids).logits
        assert folded and not products
        assert_adapter_logits(got, plain, ids)

    compare()
    with torch.no_grad():  # an adapter edited in place (more training) is folded again
        for twin in (plain, model):
            for name, parameter in twin.named_parameters():
                if "lora_B" in name:
                    parameter.mul_(-3)
    compare()
    engine.generate([GenerationRequest(tuple(ids[0].tolist()), Sampling(max_new_tokens=3), "default")])
    assert not products  # the engine decodes one adapter's batch folded
    with torch.inference_mode():
        model(input_ids=ids)  # outside the fold, PEFT's own path again
    assert products


def test_adapters_that_cannot_be_folded_decode_as_peft_does(tiny) -> None:  # noqa: F811
    spec, tokenizer = tiny
    dora = LoraConfig(r=4, target_modules=["q_proj"], use_dora=True)
    engine = Engine(get_peft_model(lively(spec), dora), tokenizer, dtype=DType.bfloat16)
    assert foldable_layers(engine.model, "default") is None
    assert foldable_layers(engine.model, BASE) is None
    with folded_lora(engine.model, "default") as folded:
        assert not folded


def test_a_new_engine_packs_again_after_an_edit_through_data(tiny) -> None:  # noqa: F811
    """PEFT's merge edits ``weight.data`` (no version bump): the next engine must not reuse the old copy."""
    plain, engine, ids = twins(tiny)
    with torch.inference_mode():
        engine.model(input_ids=ids)  # the packed copies in use
    merged = Engine(engine.model.merge_and_unload(), engine.tokenizer, dtype=DType.bfloat16)
    with torch.inference_mode():
        got = merged.model(input_ids=ids).logits
    assert_adapter_logits(got, plain, ids)


def test_a_stream_left_midway_unfolds_the_adapter(tiny) -> None:  # noqa: F811
    spec, tokenizer = tiny
    engine = Engine(get_peft_model(lively(spec), lora()), tokenizer, dtype=DType.bfloat16)
    prompt = engine.encode([{"role": "user", "content": "What about Mars?"}])
    stream = engine.stream([GenerationRequest(prompt, Sampling(max_new_tokens=8), "default")])
    next(stream)
    packed = [m for m in engine.model.modules() if isinstance(m, PackedLinear)]
    assert any(m.folded_with == "default" for m in packed)
    stream.close()  # a client that left
    assert all(m.folded_with is None for m in packed)
    assert not engine.model.base_model.model.model.layers[0].self_attn.q_proj.disable_adapters


def test_one_fold_is_kept_and_another_adapter_folds_again(tiny) -> None:  # noqa: F811
    """A server switching personas: each adapter answers as itself; one folded copy, not one each."""
    spec, tokenizer = tiny
    torch.manual_seed(0)
    model = get_peft_model(lively(spec), LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    model.add_adapter("yoda", LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    engine = Engine(model, tokenizer, dtype=DType.bfloat16)
    ids = torch.tensor([engine.encode([{"role": "user", "content": "What about Mars?"}])])

    def folded_logits(adapter: str) -> torch.Tensor:
        with torch.inference_mode(), engine.using(adapter), folded_lora(engine.model, adapter) as folded:
            assert folded
            return engine.model(input_ids=ids).logits

    first, other, again = folded_logits("default"), folded_logits("yoda"), folded_logits("default")
    assert (first - other).abs().max() > 0.5 and torch.equal(first, again)
    folds = {m.fold.key[0] for m in engine.model.modules() if isinstance(m, PackedLinear) and m.fold}
    assert folds == {"default"}


def test_an_adapter_loaded_again_under_its_name_is_folded_again(tiny) -> None:  # noqa: F811
    """New A and B tensors under an old name (same sizes, maybe the same addresses) are a new fold."""
    spec, tokenizer = tiny
    config = LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False)
    torch.manual_seed(0)
    model = get_peft_model(lively(spec), config)
    model.add_adapter("yoda", config)
    engine = Engine(model, tokenizer, dtype=DType.bfloat16)
    ids = torch.tensor([engine.encode([{"role": "user", "content": "What about Mars?"}])])

    def logits(adapter: str, fold: bool) -> torch.Tensor:
        folding = folded_lora(engine.model, adapter) if fold else contextlib.nullcontext()
        with torch.inference_mode(), engine.using(adapter), folding:
            return engine.model(input_ids=ids).logits

    old = logits("yoda", fold=True)
    engine.model.set_adapter("default")
    engine.model.delete_adapter("yoda")
    torch.manual_seed(1)
    engine.model.add_adapter("yoda", config)
    cast_for_decoding(engine.model, DType.bfloat16)
    new = logits("yoda", fold=True)
    assert (new - old).abs().max() > 0.5
    assert (new - logits("yoda", fold=False)).abs().max() < 0.1  # PEFT's own path agrees


def test_a_fold_is_for_the_very_tensors_it_was_built_from() -> None:
    """Same size and version is not enough: a freed tensor's address may be handed to the next one."""
    a, b = torch.zeros(2), torch.zeros(2)
    fold = _Fold(("yoda", 2.0), [(weakref.ref(a), a._version)], torch.zeros(1))
    assert fold.built_from(("yoda", 2.0), [a])
    assert not fold.built_from(("yoda", 2.0), [b]) and not fold.built_from(("yoda", 1.0), [a])
    a.add_(1)  # an edit through the tensor itself
    assert not fold.built_from(("yoda", 2.0), [a])
