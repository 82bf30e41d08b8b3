"""Preference pairs for DPO and ORPO: TRL's ``prompt`` / ``chosen`` / ``rejected``, read and batched.

Rows may be TRL's conversational format (``prompt`` a list of messages, ``chosen`` and ``rejected``
one assistant message each) or its standard format (three strings). A folder written by
tonetune-synthesize holds them as ``preferences_<split>.jsonl``. A batch stacks the chosen answers
then the rejected ones, padded to one width; the loss lays each pair out as one row that holds its
prompt once (``tonetune.models.shared_prompt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

from tonetune.data.base import TokenizedData
from tonetune.data.chat import tokenize_conversation
from tonetune.data.loading import Columns, could_be_hub_id, read_jsonl
from tonetune.errors import DataError
from tonetune.models.loss import IGNORE_INDEX
from tonetune.persona import with_system_prompt

PREFERENCE_FILE = "preferences_{split}.jsonl"
NO_PREFERENCE = {"tie", "both_bad"}
"""Arena votes that prefer neither answer: read past."""


def load_pairs(source: str, columns: Columns | None = None) -> DatasetDict:
    """Pairs by split, each ``{"prompt": messages, "chosen": text, "rejected": text}``."""
    columns = columns or Columns()
    rows = {
        split: [(w, r) for w, r in items if r.get("outcome") not in NO_PREFERENCE]
        for split, items in _rows(source).items()
    }
    problems: list[str] = []
    pairs = {
        split: [_pair(row, where, columns, problems) for where, row in items] for split, items in rows.items()
    }
    if problems:
        more = f" (and {len(problems) - 3} more problems)" if len(problems) > 3 else ""
        raise DataError("; ".join(problems[:3]) + more)
    return DatasetDict({split: Dataset.from_list(items) for split, items in pairs.items() if items})


def _rows(source: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    path = Path(source).expanduser()
    if path.is_file():
        return _by_split(read_jsonl(path))
    if path.is_dir():
        files = sorted(path.glob(PREFERENCE_FILE.format(split="*")))
        if files:
            return {f.stem.removeprefix("preferences_"): list(read_jsonl(f)) for f in files}
        data = load_from_disk(str(path))
    elif could_be_hub_id(source):
        data = load_dataset(source)
    else:
        raise DataError(f"data.source={source}: no such file or folder")
    if isinstance(data, Dataset):
        return _by_split((f"{source} row {i}", row) for i, row in enumerate(data))
    return {
        split: [(f"{source} split {split} row {i}", r) for i, r in enumerate(data[split])] for split in data
    }


def _by_split(rows) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    grouped: dict[str, list] = {}
    for where, row in rows:
        grouped.setdefault(str(row.get("split") or "train"), []).append((where, row))
    return grouped


def _pair(row: dict[str, Any], where: str, columns: Columns, problems: list[str]) -> dict[str, Any]:
    prompt = row.get(columns.prompt)
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt or prompt[-1].get("role") != "user":
        problems.append(
            f"{where}: field {columns.prompt!r} must be a question or messages ending with the user's"
        )
        prompt = [{"role": "user", "content": ""}]
    answers = {}
    for field in (columns.chosen, columns.rejected):
        value = row.get(field)
        if isinstance(value, list) and len(value) == 1 and value[0].get("role") == "assistant":
            value = value[0].get("content")
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: field {field!r} must be an answer (text, or one assistant message)")
            value = ""
        answers[field] = value.strip()
    return {"prompt": prompt, "chosen": answers[columns.chosen], "rejected": answers[columns.rejected]}


class PreferenceDataModule(TokenizedData):
    """Preference pairs, tokenized with the chat template (answer tokens and end-of-turn labelled).

    See ``TokenizedData`` for the arguments. ``set_reference`` adds the reference model's
    log-probabilities (computed once before DPO training) to every pair.
    """

    model_columns = ("chosen", "rejected", "reference_logps")

    def load(self) -> DatasetDict:
        """Pairs by split."""
        return load_pairs(self.source, self.columns)

    def encode(self, row: dict[str, Any]) -> dict[str, Any]:
        """Both answers after the shared prompt, each with its labels."""
        prompt = with_system_prompt(row["prompt"], self.system_prompt)
        sides = {
            side: tokenize_conversation(
                self.tokenizer, [*prompt, {"role": "assistant", "content": row[side]}], self.max_length
            )
            for side in ("chosen", "rejected")
        }
        return {
            "chosen": {k: sides["chosen"][k] for k in ("input_ids", "attention_mask", "labels")},
            "rejected": {k: sides["rejected"][k] for k in ("input_ids", "attention_mask", "labels")},
            "length": max(len(s["input_ids"]) for s in sides.values()),
            "truncated": any(s["truncated"] for s in sides.values()),
        }

    def keep(self, row: dict[str, Any]) -> bool:
        """Pairs in which both answers keep a token after truncation."""
        return all(
            any(label != IGNORE_INDEX for label in row[side]["labels"]) for side in ("chosen", "rejected")
        )

    def set_reference(self, split: str, logps: torch.Tensor) -> None:
        """Store the reference log-probabilities of ``split`` (shape [pairs, 2]: chosen, rejected)."""
        data = self.split(split)
        if "reference_logps" in data.column_names:
            data = data.remove_columns("reference_logps")
        self.splits[split] = data.add_column("reference_logps", logps.tolist())

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Chosen rows then rejected rows, padded to one width (right padding, labels -100)."""
        rows = [f["chosen"] for f in features] + [f["rejected"] for f in features]
        width = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        pad = self.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in rows]),
            "attention_mask": torch.tensor(
                [r["attention_mask"] + [0] * (width - len(r["input_ids"])) for r in rows]
            ),
            "labels": torch.tensor(
                [r["labels"] + [IGNORE_INDEX] * (width - len(r["input_ids"])) for r in rows]
            ),
        }
        if "reference_logps" in features[0]:
            reference = torch.tensor([f["reference_logps"] for f in features], dtype=torch.float32)
            batch["reference_logps"] = torch.cat([reference[:, 0], reference[:, 1]])
        return batch
