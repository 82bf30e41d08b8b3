"""Decoding one LoRA adapter from packed weights with its delta folded in: no adapter products per step.

A LoRA layer adds ``B(A x)`` to its projection at every step, and at a decode step's few rows those
small bf16 products cost as much as half the base model's step (``python -m bench.folded_lora``:
SmolLM2-135M, 8 rows). When a batch decodes with one adapter, each of its layers' packed base
weights gets ``W + scaling * B A`` packed, and PEFT's adapters are switched off while it decodes:
the fine-tuned model then steps about as fast as the base. The copy is rebuilt when the adapter,
its scaling or its A and B tensors change (another tensor, or an edit through the tensor itself);
an edit through ``.data`` is seen by the next engine only, as for the packed weights. The price:
one more packed copy of the adapted weights, kept for the adapter folded last only (a batch for
another adapter folds again: a server switching personas pays that per switch), and the sum, taken
in float32, rounded to bf16 once where the unfolded path rounds the two products apart (how close
greedy answers stay to the fp32 reference: docs/BENCHMARKS.md). Adapters it cannot fold (DoRA, a
LoRA bias, ``fan_in_fan_out`` layers, modules saved whole, unpacked weights) decode as PEFT does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from peft import PeftModel
from peft.tuners.lora.layer import Linear as LoraLinear
from peft.tuners.lora.layer import LoraLayer
from peft.utils.other import AuxiliaryTrainingWrapper

from tonetune.generation.packed_linear import PackedLinear


def foldable_layers(model: Any, adapter: str) -> list[LoraLinear] | None:
    """The LoRA layers that hold ``adapter``, when every one of them can be folded; else None."""
    if not isinstance(model, PeftModel) or adapter not in model.peft_config:
        return None
    if any(isinstance(module, AuxiliaryTrainingWrapper) for module in model.modules()):
        return None
    layers = [m for m in model.modules() if isinstance(m, LoraLayer) and _holds(m, adapter)]
    if not layers or not all(_can_fold(layer, adapter) for layer in layers):
        return None
    return layers


@contextlib.contextmanager
def folded_lora(model: Any, adapter: str | None) -> Iterator[bool]:
    """Within: ``model`` answers as ``adapter`` from folded weights (yields whether it could)."""
    layers = foldable_layers(model, adapter) if adapter is not None else None
    if layers is None:
        yield False
        return
    try:
        for layer in layers:
            sources = (layer.lora_A[adapter].weight, layer.lora_B[adapter].weight)
            layer.base_layer.fold_in((adapter, layer.scaling[adapter]), sources, _delta(layer, adapter))
        with model.disable_adapter():
            yield True
    finally:
        for layer in layers:
            layer.base_layer.folded_with = None


def _holds(layer: LoraLayer, adapter: str) -> bool:
    return adapter in layer.lora_A or adapter in layer.lora_embedding_A


def _can_fold(layer: LoraLayer, adapter: str) -> bool:
    return (
        type(layer) is LoraLinear
        and adapter in layer.lora_A
        and type(layer.base_layer) is PackedLinear
        and adapter not in layer.lora_variant
        and not layer.lora_bias.get(adapter, False)
        and not layer.merged
        and not layer.fan_in_fan_out
    )


def _delta(layer: LoraLinear, adapter: str) -> Any:
    """``scaling * B A`` in float32 (PEFT's ``get_delta_weight`` rounds it to the adapter's dtype)."""

    def delta() -> torch.Tensor:
        a, b = layer.lora_A[adapter].weight.float(), layer.lora_B[adapter].weight.float()
        return (b @ a) * layer.scaling[adapter]

    return delta
