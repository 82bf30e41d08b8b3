"""Read conversations from JSONL files, ``datasets`` folders or hub ids; errors name file, line and field.

Two row formats are accepted: OpenAI chat format (a ``messages`` list) or question/answer columns.
Every row becomes ``{"messages": [...], "category": ...}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

from tonetune.errors import DataError

ROLES = {"system", "user", "assistant"}
LOCAL_SUFFIXES = {".jsonl", ".json", ".txt", ".csv", ".parquet", ".arrow"}
_MAX_LISTED_PROBLEMS = 3


@dataclass(frozen=True)
class Columns:
    """Which fields of a row hold what (``data.*_field`` options)."""

    messages: str = "messages"
    question: str = "question"
    answer: str = "answer"
    category: str = "category"
    split: str = "split"
    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"
    text: str = "text"


def load_conversations(source: str | Path, columns: Columns = Columns()) -> DatasetDict:
    """Load ``source`` into a DatasetDict of normalised conversations, keyed by split.

    A flat file with a ``split`` column is split by it; otherwise all rows are ``train``.
    """
    rows_by_split = {split: list(rows) for split, rows in _read_rows(str(source), columns).items()}
    problems: list[str] = []
    converted = {
        split: [_normalise(row, where, columns, problems) for where, row in rows]
        for split, rows in rows_by_split.items()
    }
    _raise_if_problems(problems)
    return DatasetDict({split: Dataset.from_list(rows) for split, rows in converted.items() if rows})


def read_text_lines(path: Path) -> Iterator[tuple[str, str]]:
    """Yield ``("file line N", text)`` for each non-blank line, stripped.

    Bytes that are not UTF-8 raise a DataError naming the file and line.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path} line {number}"
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{where}: not UTF-8 text (byte {raw[err.start]:#04x} at column {err.start + 1})"
                ) from err
            if line:
                yield where, line


def read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("file line N", row)`` for each non-blank line; a bad line raises a DataError naming it."""
    for where, line in read_text_lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from err
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        yield where, row


def _read_rows(source: str, columns: Columns) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix not in {".jsonl", ".json"}:
            raise DataError(f"data.source={source}: expected a .jsonl file or a datasets folder")
        return _split_flat_rows(read_jsonl(path), columns)
    if path.is_dir():
        return _rows_from_dataset(_load_saved(path), str(path), columns)
    if not could_be_hub_id(source):
        raise DataError(f"data.source={source}: no such file or folder{_how_to_make(source)}")
    return _rows_from_dataset(_load_hub(source), source, columns)


def could_be_hub_id(source: str) -> bool:
    """Whether a missing local path may be a hub dataset id (``owner/name``, online, not path-like)."""
    path = Path(source)
    return not (
        os.environ.get("HF_HUB_OFFLINE", "0").lower() not in {"", "0", "false", "no"}
        or path.is_absolute()
        or source.startswith((".", "~"))
        or source.count("/") != 1
        or path.suffix.lower() in LOCAL_SUFFIXES
        or Path(path.parts[0]).is_dir()
    )


def _how_to_make(source: str) -> str:
    """A hint for the dataset folder ``tonetune-synthesize`` writes (``data/<persona>``)."""
    if Path(source).suffix:
        return ""
    return "; run tonetune-synthesize to create it, or train on data=example or data.source=<your .jsonl>"


def _load_saved(path: Path) -> Dataset | DatasetDict:
    try:
        return load_from_disk(str(path))
    except FileNotFoundError as err:
        raise DataError(f"data.source={path}: not a folder saved by datasets (save_to_disk)") from err


def _load_hub(dataset_id: str) -> DatasetDict:
    try:
        return load_dataset(dataset_id)
    except Exception as err:  # datasets raises many kinds; all mean "cannot get it"
        raise DataError(
            f"data.source={dataset_id}: no such file or folder here, and no hub dataset of that name "
            f"({type(err).__name__}){_how_to_make(dataset_id)}"
        ) from err


def _rows_from_dataset(
    data: Dataset | DatasetDict, name: str, columns: Columns
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    if isinstance(data, Dataset):
        return _split_flat_rows(((f"{name} row {i}", row) for i, row in enumerate(data)), columns)
    return {
        split: [(f"{name} split {split} row {i}", row) for i, row in enumerate(data[split])] for split in data
    }


def _split_flat_rows(
    rows: Iterable[tuple[str, dict[str, Any]]], columns: Columns
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    grouped: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for where, row in rows:
        split = row.get(columns.split) or "train"
        grouped.setdefault(str(split), []).append((where, row))
    return grouped


def _normalise(row: dict[str, Any], where: str, columns: Columns, problems: list[str]) -> dict[str, Any]:
    if columns.messages in row and row[columns.messages] is not None:
        messages = _check_messages(row[columns.messages], where, columns.messages, problems)
    else:
        messages = _qa_messages(row, where, columns, problems)
    category = row.get(columns.category)
    return {"messages": messages, "category": "" if category is None else str(category)}


def _qa_messages(
    row: dict[str, Any], where: str, columns: Columns, problems: list[str]
) -> list[dict[str, str]]:
    texts = {}
    for field in (columns.question, columns.answer):
        value = row.get(field)
        if field not in row:
            problems.append(f"{where}: field {field!r} is missing (or give a {columns.messages!r} list)")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: field {field!r} is empty")
        texts[field] = value if isinstance(value, str) else ""
    return [
        {"role": "user", "content": texts[columns.question].strip()},
        {"role": "assistant", "content": texts[columns.answer].strip()},
    ]


def _check_messages(messages: Any, where: str, field: str, problems: list[str]) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        problems.append(f"{where}: field {field!r} must be a non-empty list of messages")
        return []
    clean = []
    for i, message in enumerate(messages):
        at = f"{where}: {field}[{i}]"
        if not isinstance(message, dict):
            problems.append(f"{at} is not an object")
            continue
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            problems.append(f"{at}.role={role!r} is not one of {sorted(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            problems.append(f"{at}.content is empty")
        clean.append({"role": str(role), "content": content.strip() if isinstance(content, str) else ""})
    if clean and clean[-1]["role"] != "assistant":
        problems.append(f"{where}: field {field!r} must end with an assistant message")
    return clean


def _raise_if_problems(problems: list[str]) -> None:
    if not problems:
        return
    listed = "; ".join(problems[:_MAX_LISTED_PROBLEMS])
    more = len(problems) - _MAX_LISTED_PROBLEMS
    raise DataError(listed + (f" (and {more} more problems)" if more > 0 else ""))
