"""bf16 linear layers whose weights are laid out once for oneDNN, not at every call.

``F.linear`` in bf16 on a CPU gives oneDNN a plain weight to prepare at each call;
``pack_linear_weights`` keeps a copy of each base-model ``nn.Linear`` weight in oneDNN's own layout
(``torch.ops.mkldnn._reorder_linear_weight``) and, while no gradient is taken, multiplies with it
(``torch.ops.mkldnn._linear_pointwise``, the kernel ``torch.compile``'s CPU backend uses for frozen
weights). At a decode step's 16-96 rows the products take about two thirds of the time. The copy is
rebuilt if the weight is replaced or changed in place through the parameter itself (an optimizer
step, ``load_state_dict``: its storage or version counter moves) and by every new engine (an edit
through ``weight.data``, as PEFT's merge makes, moves neither). The
results match ``F.linear`` to bf16 rounding, not bit for bit, so only bf16 weights are packed: the
float32 reference path stays transformers' own. The copy costs the weights' size again in memory.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn


@cache
def can_pack(dtype: torch.dtype) -> bool:
    """Whether this CPU's oneDNN multiplies packed ``dtype`` weights (bf16 only)."""
    return (
        dtype == torch.bfloat16
        and torch.backends.mkldnn.is_available()
        and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


class PackedLinear(nn.Linear):
    """An ``nn.Linear`` (still one to PEFT and ``state_dict``) with a packed copy of its weight.

    It can also hold, for one LoRA adapter at a time, the packed weight with the adapter's delta
    added (``tonetune.generation.folded_lora``); ``folded_with`` says when its products use it.
    """

    packed: torch.Tensor
    packed_from: tuple[int, int]
    fold: _Fold | None
    """The adapter folded last and its packed weight (one at a time)."""
    folded_with: str | None = None

    def pack(self) -> None:
        """(Re)build the packed copy from the current weight."""
        self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), 1)
        self.packed_from = _identity(self.weight)
        self.fold = None

    def fold_in(self, key: tuple, sources: Sequence[torch.Tensor], delta: Callable[[], torch.Tensor]) -> None:
        """Use the packed ``weight + delta()`` for ``key`` (an adapter's name, then its settings).

        Rebuilt when the key changes, or one of ``sources`` (the tensors ``delta`` reads) is another
        tensor or was changed through itself. Kept for the last key only: one more copy of the
        weight, however many adapters.
        """
        if _identity(self.weight) != self.packed_from:
            self.pack()
        if self.fold is None or not self.fold.built_from(key, sources):
            self.fold = None  # the old copy goes before the new one is built
            with torch.no_grad():
                merged = (self.weight.float() + delta().float()).to(self.weight.dtype)
            packed = torch.ops.mkldnn._reorder_linear_weight(merged, 1)
            self.fold = _Fold(key, [(weakref.ref(t), t._version) for t in sources], packed)
        self.folded_with = key[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The packed product where it applies (bf16 on a CPU, no gradient), else ``F.linear``."""
        weight = self.weight
        if (
            torch.is_grad_enabled()
            or x.dtype != weight.dtype
            or x.device.type != "cpu"
            or not can_pack(x.dtype)
        ):
            if self.folded_with is not None:
                raise RuntimeError("a folded adapter decodes only on its packed weights")
            return F.linear(x, weight, self.bias)
        if self.folded_with is not None:
            if self.fold is None:  # a new engine packed again while this adapter was folded
                raise RuntimeError(f"no folded weight for adapter {self.folded_with!r}")
            packed = self.fold.packed
        else:
            if _identity(weight) != self.packed_from:
                self.pack()
            packed = self.packed
        return torch.ops.mkldnn._linear_pointwise(x, packed, self.bias, "none", [], "")


@dataclass
class _Fold:
    """A packed ``weight + delta``, the key it is for, and the tensors (and versions) it was built from."""

    key: tuple
    sources: list[tuple[weakref.ref, int]]
    packed: torch.Tensor

    def built_from(self, key: tuple, sources: Sequence[torch.Tensor]) -> bool:
        """Whether this copy is ``key``'s from these very tensors, unchanged since (not just same-sized)."""
        return (
            self.key == key
            and len(self.sources) == len(sources)
            and all(ref() is t and v == t._version for (ref, v), t in zip(self.sources, sources, strict=True))
        )


def _identity(weight: torch.Tensor) -> tuple[int, int]:
    """Which tensor, at which in-place version: a new one (``.data = ...``) or an edit changes it."""
    return weight.data_ptr(), weight._version


def _adapter_modules(model: nn.Module) -> set[int]:
    """The ``id`` of each module PEFT added (each adapter's own small layers), which stay as they are."""
    return {
        id(sub)
        for layer in model.modules()
        if isinstance(layer, BaseTunerLayer)
        for name in layer.adapter_layer_names
        for sub in getattr(layer, name).modules()
    }


def pack_linear_weights(model: Any) -> int:
    """Turn ``model``'s bf16 CPU ``nn.Linear`` layers (not an adapter's own) into ``PackedLinear``.

    Layers already packed are packed again: an edit through ``weight.data`` (PEFT's merge) moves
    neither the storage nor the version counter, so a new engine never trusts an old copy.

    Returns how many were packed: none where this CPU has no bf16 oneDNN kernels, or the weights are
    another dtype or not on the CPU.
    """
    skip = _adapter_modules(model)
    packed = 0
    for module in model.modules():
        if _packable(module, skip):
            module.__class__ = PackedLinear
        if type(module) is PackedLinear:  # or packed by an earlier engine: its weight may have moved
            module.pack()
            packed += 1
    return packed


def _packable(module: nn.Module, skip: set[int]) -> bool:
    """A plain bf16 ``nn.Linear`` on the CPU that is not an adapter's own."""
    return (
        type(module) is nn.Linear
        and id(module) not in skip
        and module.weight.device.type == "cpu"
        and can_pack(module.weight.dtype)
    )
