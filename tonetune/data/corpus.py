"""Self-supervised data (``objective=lm``): plain text of the persona's own writing, every token trained.

A corpus is text files (documents separated by blank lines; a folder: one document per file) or
JSONL with a text field (``data.columns.text``; e.g. ``answer`` to read a Q/A file's answers alone).
Documents end with the end-of-text token and are packed into ``data.max_length`` sequences, so no
position is padding.
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, DatasetDict

from tonetune.data.base import TokenizedData
from tonetune.data.loading import Columns, read_jsonl, read_text_lines
from tonetune.errors import DataError


def load_documents(source: str, columns: Columns | None = None) -> DatasetDict:
    """Documents by split (``{"text": ...}``); a JSONL ``split`` column is honoured, else all are train."""
    columns = columns or Columns()
    path = Path(source).expanduser()
    if path.is_dir():
        documents = [("train", f.read_text(encoding="utf-8")) for f in sorted(path.glob("*.txt"))]
    elif path.suffix == ".jsonl" and path.is_file():
        documents = [
            (str(row.get(columns.split) or "train"), _text(row, where, columns))
            for where, row in read_jsonl(path)
        ]
    elif path.is_file():
        documents = [("train", paragraph) for paragraph in _paragraphs(path)]
    else:
        raise DataError(
            f"data.source={source}: no such file or folder (a corpus is .txt files or JSONL with text)"
        )
    by_split: dict[str, list[dict[str, str]]] = {}
    for split, text in documents:
        if text.strip():
            by_split.setdefault(split, []).append({"text": text.strip()})
    if not by_split:
        raise DataError(f"data.source={source}: no text in it")
    return DatasetDict({split: Dataset.from_list(rows) for split, rows in by_split.items()})


def _text(row: dict[str, Any], where: str, columns: Columns) -> str:
    text = row.get(columns.text)
    if not isinstance(text, str):
        raise DataError(f"{where}: field {columns.text!r} (data.columns.text) is missing")
    return text


def _paragraphs(path: Path) -> list[str]:
    """Documents of a text file: blocks of lines separated by blank lines."""
    blocks: list[list[str]] = [[]]
    previous = 0
    for where, line in read_text_lines(path):
        number = int(where.rsplit(" ", 1)[1])
        if number > previous + 1 and blocks[-1]:
            blocks.append([])
        blocks[-1].append(line)
        previous = number
    return ["\n".join(block) for block in blocks if block]


class CorpusDataModule(TokenizedData):
    """Plain-text documents, packed; the loss covers every token (``pack: false`` keeps one per row).

    See ``TokenizedData`` for the arguments; ``pack`` is the objective's.
    """

    def __init__(self, *args: Any, pack: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pack = pack

    def load(self) -> DatasetDict:
        """Documents by split."""
        return load_documents(self.source, self.columns)

    def encode(self, row: dict[str, Any]) -> dict[str, Any]:
        """One document's tokens, ending with the end-of-text token."""
        ids = self.tokenizer(row["text"], add_special_tokens=False)["input_ids"] + [
            self.tokenizer.eos_token_id
        ]
        return {"input_ids": ids}

    def _tokenize(self, name: str, data: Dataset) -> Dataset:
        documents = data.map(self.encode, remove_columns=data.column_names, desc=f"Tokenizing {name}")
        if self.pack:
            stream = list(chain.from_iterable(documents["input_ids"]))
            sequences = [stream[i : i + self.max_length] for i in range(0, len(stream), self.max_length)]
        else:
            sequences = [ids[: self.max_length] for ids in documents["input_ids"]]
        sequences = [s for s in sequences if len(s) > 1]
        if not sequences:
            raise DataError(f"data.source={self.source}: the {name} text is too short to train on")
        return Dataset.from_list(
            [
                {"input_ids": s, "attention_mask": [1] * len(s), "labels": list(s), "length": len(s)}
                for s in sequences
            ]
        )

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Right-padded batch (packed sequences need none but the last)."""
        width = max(len(f["input_ids"]) for f in features)
        pad = self.tokenizer.pad_token_id
        return {
            "input_ids": torch.tensor(
                [f["input_ids"] + [pad] * (width - len(f["input_ids"])) for f in features]
            ),
            "attention_mask": torch.tensor(
                [f["attention_mask"] + [0] * (width - len(f["input_ids"])) for f in features]
            ),
            "labels": torch.tensor([f["labels"] + [-100] * (width - len(f["input_ids"])) for f in features]),
        }
