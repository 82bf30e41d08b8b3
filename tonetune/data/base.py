"""What every data module shares: a train/validation split, tokenization once, resumable loaders.

The chat (SFT), preference (DPO/ORPO) and corpus (LM) modules differ only in how they read their
source, tokenize an example and collate a batch; the rest is here.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from typing import Any

import lightning as L
from datasets import Dataset, DatasetDict
from torchdata.stateful_dataloader import StatefulDataLoader
from transformers import PreTrainedTokenizerBase

from tonetune.data.loading import Columns
from tonetune.data.sampling import EpochLengthGroupedSampler
from tonetune.errors import DataError

log = logging.getLogger(__name__)

TRUNCATED_WARNING_SHARE = 0.2
"""Above this share of truncated training examples, the log says what the model will learn from it."""


class TokenizedData(L.LightningDataModule):
    """Base of tonetune's data modules.

    Args:
        source: A .jsonl file, a folder saved by ``datasets`` (or written by tonetune-synthesize), or a
            hub dataset id.
        tokenizer: The base model's tokenizer (its chat template is applied).
        system_prompt: Prepended to every conversation without one; None trains without it.
        columns: Field names of the rows (``data.columns.*``).
        val_fraction: Share of train rows held out for validation when the data has no validation split.
        max_length: Longest sequence in tokens; longer ones are truncated (and counted in the log).
        allow_truncated: Train even when every training example is longer than ``max_length`` (each
            loses its end of turn, so the model learns never to stop); refused otherwise.
        batch_size: Examples per training step (before gradient accumulation).
        eval_batch_size: Examples per validation step (defaults to ``batch_size``).
        group_by_length: Batch examples of similar length together to cut padding.
        pad_to_multiple_of: Pad each batch's length to a multiple of this (None: no rounding).
        num_workers: DataLoader worker processes.
        seed: Seed of the validation split and the shuffling.
        limit_train_examples: Use only the first N training examples (quick runs).
    """

    model_columns: tuple[str, ...] = ("input_ids", "attention_mask", "labels")

    def __init__(
        self,
        source: str,
        tokenizer: PreTrainedTokenizerBase | None = None,
        system_prompt: str | None = None,
        columns: dict[str, str] | None = None,
        val_fraction: float = 0.1,
        max_length: int = 512,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        group_by_length: bool = True,
        pad_to_multiple_of: int | None = None,
        num_workers: int = 0,
        seed: int = 42,
        limit_train_examples: int | None = None,
        allow_truncated: bool = False,
    ) -> None:
        super().__init__()
        self.source = str(source)
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.columns = Columns(**(columns or {}))
        self.val_fraction = val_fraction
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.group_by_length = group_by_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.num_workers = num_workers
        self.seed = seed
        self.limit_train_examples = limit_train_examples
        self.allow_truncated = allow_truncated
        self.duplicates: dict[str, int] = {}
        """Exact duplicate train rows, and validation rows dropped as copies of train rows."""
        self.splits: DatasetDict | None = None

    @abstractmethod
    def load(self) -> DatasetDict:
        """The source's examples by split."""

    @abstractmethod
    def encode(self, row: dict[str, Any]) -> dict[str, Any]:
        """One example as token ids (with ``length`` and ``truncated``)."""

    @abstractmethod
    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """A batch of tokenized examples as tensors."""

    def setup(self, stage: str | None = None) -> None:
        """Load, split and tokenize once."""
        if self.splits is not None:
            return
        if self.tokenizer is None:
            raise ValueError(f"{type(self).__name__} needs the base model's tokenizer")
        examples = self._train_validation(self.load())
        self.splits = DatasetDict({name: self._tokenize(name, data) for name, data in examples.items()})

    def train_dataloader(self) -> StatefulDataLoader:
        """Shuffled, length-grouped batches; resumable mid-epoch (Lightning saves its state)."""
        data = self.split("train")
        sampler = EpochLengthGroupedSampler(data["length"], self.batch_size, self.seed, self.group_by_length)
        return self.loader(data, self.batch_size, sampler=sampler)

    def val_dataloader(self) -> StatefulDataLoader:
        """Validation batches in a fixed order."""
        return self.loader(self.split("validation"), self.eval_batch_size)

    def split(self, name: str) -> Dataset:
        """A tokenized split."""
        if self.splits is None:
            self.setup()
        return self.splits[name]  # type: ignore[index]

    def loader(self, data: Dataset, batch_size: int, sampler: Any = None) -> StatefulDataLoader:
        """A loader over ``data`` (the columns a batch needs), batched by ``collate``."""
        columns = data.select_columns([c for c in self.model_columns if c in data.column_names])
        return StatefulDataLoader(
            columns,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.num_workers,
        )

    def _train_validation(self, data: DatasetDict) -> DatasetDict:
        if "train" not in data:
            raise DataError(f"data.source={self.source}: no train rows (found splits {sorted(data)})")
        train = data["train"]
        if self.limit_train_examples:
            train = train.select(range(min(self.limit_train_examples, len(train))))
        keys = [example_key(row) for row in train]
        self.duplicates = {"train_duplicates": len(keys) - len(set(keys)), "validation_copies_dropped": 0}
        if self.duplicates["train_duplicates"]:
            log.warning(
                "%d of %d train rows are exact duplicates of another train row",
                self.duplicates["train_duplicates"],
                len(keys),
            )
        if "validation" in data:
            return DatasetDict(train=train, validation=self._not_copies(data["validation"], set(keys)))
        return self._hold_out(train, keys)

    def _hold_out(self, train: Dataset, keys: list[str]) -> DatasetDict:
        """Hold out ``val_fraction`` of the distinct rows; every copy of a row stays on its row's side."""
        first = {key: i for i, key in reversed(list(enumerate(keys)))}  # each distinct row's first index
        n_val = max(1, round(len(first) * self.val_fraction))
        if len(first) - n_val < 1:
            raise DataError(
                f"data.source={self.source}: {len(first)} distinct training rows are too few to hold out "
                "validation"
            )
        if len(first) == len(keys):
            held_out = train.train_test_split(test_size=n_val, seed=self.seed)
            return DatasetDict(train=held_out["train"], validation=held_out["test"])
        distinct = train.select(sorted(first.values())).train_test_split(test_size=n_val, seed=self.seed)
        validation = {example_key(row) for row in distinct["test"]}
        return DatasetDict(
            train=train.select([i for i, key in enumerate(keys) if key not in validation]),
            validation=train.select([i for i, key in enumerate(keys) if key in validation]),
        )

    def _not_copies(self, validation: Dataset, train_keys: set[str]) -> Dataset:
        """The validation rows that are not copies of a train row (the others are counted and left out)."""
        fresh = [i for i, row in enumerate(validation) if example_key(row) not in train_keys]
        self.duplicates["validation_copies_dropped"] = len(validation) - len(fresh)
        if not fresh:
            raise DataError(f"data.source={self.source}: every validation row is a copy of a train row")
        if len(fresh) < len(validation):
            log.warning(
                "%d validation rows are copies of train rows and are left out of validation",
                len(validation) - len(fresh),
            )
        return validation.select(fresh)

    def _tokenize(self, name: str, data: Dataset) -> Dataset:
        tokenized = data.map(self.encode, remove_columns=data.column_names, desc=f"Tokenizing {name}")
        truncated = sum(tokenized["truncated"])
        self._check_truncation(name, truncated, len(tokenized))
        if truncated:
            log.warning(
                "%d of %d %s examples exceed data.max_length=%d and were truncated",
                truncated,
                len(tokenized),
                name,
                self.max_length,
            )
        kept = tokenized.filter(self.keep)
        if len(kept) < len(tokenized):
            log.warning(
                "%d %s examples lost every answer token to truncation and are skipped",
                len(tokenized) - len(kept),
                name,
            )
        if len(kept) == 0:
            raise DataError(
                f"data.source={self.source}: no {name} example has answer tokens within data.max_length"
            )
        return kept

    def _check_truncation(self, name: str, truncated: int, total: int) -> None:
        """Refuse training data that is all truncated (no end of turn left); warn when most of it is."""
        if name != "train" or not truncated:
            return
        if truncated == total and not self.allow_truncated:
            raise DataError(
                f"data.source={self.source}: all {total} training examples are longer than "
                f"data.max_length={self.max_length}, so none keeps its end of turn and the model would "
                "learn never to stop; raise data.max_length, or set data.allow_truncated=true"
            )
        if truncated > TRUNCATED_WARNING_SHARE * total:
            log.warning(
                "%.0f%% of the training examples lose their end of turn to data.max_length=%d: the model "
                "learns to stop less often; raise data.max_length",
                100 * truncated / total,
                self.max_length,
            )

    def keep(self, row: dict[str, Any]) -> bool:
        """Whether a tokenized example still has something to learn (e.g. answer tokens after truncation)."""
        return True


def example_key(row: dict[str, Any]) -> str:
    """What makes two rows the same example: every field but the category."""
    return json.dumps(
        {k: v for k, v in row.items() if k != "category"}, sort_keys=True, ensure_ascii=False, default=str
    )
