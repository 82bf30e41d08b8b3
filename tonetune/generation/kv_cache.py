"""A KV cache allocated once per batch: each step writes its keys and values in place.

transformers' ``DynamicCache`` concatenates every layer's keys and values at every step, copying
the whole cache each time; at a batch of 96 on a CPU that copy cost more than the matmuls. Here a
layer holds one buffer as long as the batch's longest prompt plus its largest answer budget and
hands the model a view of the filled part, so attention sees exactly what it saw before.
Sliding-window layers keep transformers' own implementation.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A full-attention layer whose keys and values live in a buffer of ``capacity`` positions."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.filled = 0
        self.buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        """Write the new positions in place; the filled part of the buffers, as views."""
        if self.buffers is None:
            self.lazy_initialization(key_states, value_states)
            batch, heads, _, _ = key_states.shape
            self.buffers = tuple(
                states.new_empty(batch, heads, self.capacity, states.shape[-1])
                for states in (key_states, value_states)
            )
        end = self.filled + key_states.shape[-2]
        if end > self.capacity:
            raise ValueError(f"the KV cache holds {self.capacity} positions; {end} were asked for")
        keys, values = self.buffers
        keys[:, :, self.filled : end] = key_states
        values[:, :, self.filled : end] = value_states
        self.filled = end
        self.keys, self.values = keys[:, :, :end], values[:, :, :end]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows ``indices`` (finished rows leave the batch)."""
        if self.buffers is not None:
            self.buffers = tuple(self._kept(buffer, indices) for buffer in self.buffers)
            self.keys, self.values = (buffer[:, :, : self.filled] for buffer in self.buffers)

    def _kept(self, buffer: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """A buffer of the kept rows, only its filled positions copied."""
        kept = buffer.new_empty(len(indices), *buffer.shape[1:])
        kept[:, :, : self.filled] = buffer[indices, :, : self.filled]
        return kept


def preallocated_cache(config: Any, capacity: int) -> DynamicCache:
    """The transformers cache for ``config`` with every plain full-attention layer preallocated."""
    cache = DynamicCache(config=config)
    cache.layers = [
        PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers
    ]
    return cache
