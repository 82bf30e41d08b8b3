"""Write the synthesized dataset: a DatasetDict split by question, OpenAI fine-tuning JSONL, and a card."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict
from sklearn.model_selection import train_test_split

SPLITS = ("train", "validation", "test")


def assign_splits(
    questions: list[str], categories: list[str], validation: float, test: float, seed: int
) -> dict[str, str]:
    """Question -> split, stratified by category where every category is large enough."""
    ids = list(range(len(questions)))
    rest, test_ids = _split(ids, categories, test, seed)
    share = validation / (1.0 - test) if test < 1.0 else 0.0
    train_ids, val_ids = _split(rest, [categories[i] for i in rest], share, seed)
    split_of = {}
    for name, chosen in (("train", train_ids), ("validation", val_ids), ("test", test_ids)):
        for i in chosen:
            split_of[questions[i]] = name
    return split_of


def _split(ids: list[int], categories: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    if fraction <= 0 or len(ids) < 2:
        return ids, []
    n_held = max(1, round(len(ids) * fraction))
    stratify = (
        categories if min(Counter(categories).values()) >= 2 and n_held >= len(set(categories)) else None
    )
    kept, held = train_test_split(ids, test_size=n_held, random_state=seed, stratify=stratify)
    return sorted(kept), sorted(held)


def build_dataset(rows: list[dict[str, Any]]) -> DatasetDict:
    """Rows with question, answer, category, split -> DatasetDict with a ``messages`` column."""
    by_split: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for row in rows:
        messages = [
            {"role": "user", "content": row["question"]},
            {"role": "assistant", "content": row["answer"]},
        ]
        by_split[row["split"]].append(
            {
                "messages": messages,
                "question": row["question"],
                "answer": row["answer"],
                "category": row["category"],
            }
        )
    return DatasetDict({name: Dataset.from_list(items) for name, items in by_split.items() if items})


def write_dataset(dataset: DatasetDict, card: str, target: Path) -> None:
    """Save dataset, OpenAI JSONL and card to ``target``, replacing an older one only once complete."""
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    dataset.save_to_disk(str(staging))
    for split, data in dataset.items():
        with (staging / f"openai_{split}.jsonl").open("w", encoding="utf-8") as handle:
            for messages in data["messages"]:
                handle.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    (staging / "README.md").write_text(card, encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        os.replace(target, previous)
    os.replace(staging, target)
    shutil.rmtree(previous, ignore_errors=True)
