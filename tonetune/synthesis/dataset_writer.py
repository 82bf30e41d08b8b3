"""Write the synthesized dataset: a DatasetDict split by question, OpenAI fine-tuning JSONL, and a card.

A dataset folder lists what tonetune wrote in it (``.tonetune-dataset.json``). tonetune replaces
only its own entries, and only with ``overwrite=true``; it refuses a folder it did not write, and
never deletes or overwrites a file of yours that sits beside its own (tonetune/folders.py).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import DatasetDict
from sklearn.model_selection import train_test_split

from tonetune import folders

MANIFEST = ".tonetune-dataset.json"
LEGACY_TITLE = ": a tonetune persona dataset"


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


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse, before any work, a ``data_dir`` that tonetune may not write (see tonetune/folders.py)."""
    folders.check_target(DATASET, target, overwrite)


def write_dataset(dataset: DatasetDict, files: dict[str, Any], target: Path, overwrite: bool = False) -> None:
    """Save ``dataset`` (``load_from_disk(target)`` reads it) and ``files`` (name -> text or JSON rows).

    Everything is written beside ``target`` first; then tonetune's previous entries (only those the
    manifest lists) are swapped for the new ones, so a crash leaves the old or the new dataset.
    """
    with folders.staged(DATASET, target, overwrite) as staging:
        dataset.save_to_disk(str(staging))
        for name, content in files.items():
            _write_file(staging / name, content)


def _write_file(path: Path, content: Any) -> None:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
        return
    with path.open("w", encoding="utf-8") as handle:  # rows of a JSONL file
        for row in content:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _legacy_manifest(folder: Path) -> dict[str, Any] | None:
    """A dataset written before manifests existed: recognised by its card's title line."""
    card = folder / "README.md"
    if not (folder / "dataset_dict.json").is_file() or not card.is_file():
        return None
    if not card.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].endswith(LEGACY_TITLE):
        return None
    ours = ["README.md", "dataset_dict.json", "train", "validation", "test"]
    ours += [p.name for p in folder.glob("openai_*.jsonl")]
    return {"written": "an earlier version", "entries": [name for name in ours if (folder / name).exists()]}


DATASET = folders.OwnedFolder(
    writer="tonetune-synthesize",
    option="data_dir",
    manifest=MANIFEST,
    what="a dataset",
    legacy=_legacy_manifest,
)
