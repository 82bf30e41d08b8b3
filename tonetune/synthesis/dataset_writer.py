"""Write the synthesized dataset: a DatasetDict split by question, OpenAI fine-tuning JSONL, and a card.

A dataset folder lists what tonetune wrote in it (``.tonetune-dataset.json``). tonetune replaces
only its own entries, and only with ``overwrite=true``; it refuses a folder it did not write, and
never deletes or overwrites a file of yours that sits beside its own.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import DatasetDict
from sklearn.model_selection import train_test_split

from tonetune.errors import DataError

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
    """Refuse, before any work, a ``data_dir`` that tonetune may not write (see the module docstring)."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return
    if not target.is_dir():
        raise DataError(f"data_dir={target}: exists and is not a folder; choose another data_dir")
    manifest = _read_manifest(target)
    if manifest is None:
        theirs = ", ".join(sorted(p.name for p in target.iterdir())[:5])
        raise DataError(
            f"data_dir={target}: exists and was not written by tonetune-synthesize (it holds {theirs}); "
            "nothing was changed: choose another data_dir"
        )
    if not overwrite:
        raise DataError(
            f"data_dir={target}: already holds a dataset written by tonetune-synthesize on "
            f"{manifest.get('written', '?')}; set overwrite=true to replace it (your own files there are "
            "kept), or choose another data_dir"
        )


def write_dataset(dataset: DatasetDict, files: dict[str, Any], target: Path, overwrite: bool = False) -> None:
    """Save ``dataset`` (``load_from_disk(target)`` reads it) and ``files`` (name -> text or JSON rows).

    Everything is written beside ``target`` first; then tonetune's previous entries (only those the
    manifest lists) are swapped for the new ones, so a crash leaves the old or the new dataset.
    """
    check_target(target, overwrite)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    dataset.save_to_disk(str(staging))
    for name, content in files.items():
        _write_file(staging / name, content)
    entries = sorted(p.name for p in staging.iterdir())
    manifest = {
        "written_by": "tonetune-synthesize",
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "entries": entries,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if not target.exists() or not any(target.iterdir()):
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
        return
    _swap_in(staging, target, entries)


def _write_file(path: Path, content: Any) -> None:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
        return
    with path.open("w", encoding="utf-8") as handle:  # rows of a JSONL file
        for row in content:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _swap_in(staging: Path, target: Path, entries: list[str]) -> None:
    """Replace tonetune's old entries in ``target`` by the staged ones; nothing else is touched."""
    old = set((_read_manifest(target) or {}).get("entries", []))
    clashes = [name for name in entries if (target / name).exists() and name not in old]
    if clashes:
        shutil.rmtree(staging)
        raise DataError(
            f"data_dir={target}: {', '.join(clashes)} there is not tonetune's; nothing was changed: move it "
            "or choose another data_dir"
        )
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    for name in sorted(old | {MANIFEST}):
        if (target / name).exists():
            os.replace(target / name, previous / name)
    for name in [*entries, MANIFEST]:
        os.replace(staging / name, target / name)
    shutil.rmtree(previous)
    staging.rmdir()


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file():
        return _legacy_manifest(folder)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


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
