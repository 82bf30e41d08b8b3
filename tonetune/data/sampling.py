"""Length-grouped shuffling whose order depends only on (seed, epoch): a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler


class EpochLengthGroupedSampler(LengthGroupedSampler):
    """transformers' LengthGroupedSampler, reseeded every epoch (Lightning calls ``set_epoch``).

    Batches hold examples of similar length (little padding); their order is random. With
    ``group_by_length=False`` it is a plain seeded shuffle.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_by_length: bool = True) -> None:
        super().__init__(batch_size=batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0
        self.group_by_length = group_by_length

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if not self.group_by_length:
            return iter(torch.randperm(len(self.lengths), generator=self.generator).tolist())
        return super().__iter__()
