"""Folders tonetune writes for the user (a dataset, an export), guarded by a manifest.

Such a folder lists what tonetune wrote in it (a manifest file such as ``.tonetune-dataset.json``).
tonetune replaces only its own entries, and only with ``overwrite=true``; it refuses a folder it did
not write, and never deletes or overwrites a file of yours that sits beside its own. A folder given
through a symbolic link is written through the link. Everything is written beside the folder first,
then swapped in, so a crash leaves the old or the new contents.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tonetune.errors import DataError


@dataclass(frozen=True)
class OwnedFolder:
    """One kind of folder tonetune writes: who writes it, the option that names it, its manifest."""

    writer: str
    """The command, e.g. ``tonetune-synthesize``."""
    option: str
    """The config key of the folder, e.g. ``data_dir`` (errors name it)."""
    manifest: str
    """The manifest's file name inside the folder."""
    what: str = "a folder"
    """What it holds, for messages: ``a dataset``, ``an export``."""
    legacy: Callable[[Path], dict[str, Any] | None] | None = None
    """Recognises a folder written before manifests existed (its manifest, or None)."""

    def read_manifest(self, folder: Path) -> dict[str, Any] | None:
        """The folder's manifest (or the legacy one), None when tonetune did not write it."""
        path = folder / self.manifest
        if not path.is_file():
            return self.legacy(folder) if self.legacy else None
        try:
            manifest = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return manifest if isinstance(manifest, dict) else None


def real_folder(kind: OwnedFolder, target: Path) -> Path:
    """``target``, or the folder its symbolic link points to; a link to nothing or to a file is refused."""
    if not target.is_symlink():
        return target
    points_to = target.resolve()
    if not points_to.is_dir():
        state = "a file" if points_to.exists() else "nothing"
        raise DataError(
            f"{kind.option}={target}: is a symbolic link to {points_to}, which is {state}; "
            f"nothing was written: point the link at a folder, or choose another {kind.option}"
        )
    return points_to


def check_target(kind: OwnedFolder, target: Path, overwrite: bool) -> None:
    """Refuse, before any work, a folder that tonetune may not write (see the module docstring)."""
    shown, target = target, real_folder(kind, target)
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return
    if not target.is_dir():
        raise DataError(f"{kind.option}={shown}: exists and is not a folder; choose another {kind.option}")
    manifest = kind.read_manifest(target)
    if manifest is None:
        theirs = ", ".join(sorted(p.name for p in target.iterdir())[:5])
        raise DataError(
            f"{kind.option}={shown}: exists and was not written by {kind.writer} (it holds {theirs}); "
            f"nothing was changed: choose another {kind.option}"
        )
    if not overwrite:
        raise DataError(
            f"{kind.option}={shown}: already holds {kind.what} written by {kind.writer} on "
            f"{manifest.get('written', '?')}; set overwrite=true to replace it (your own files there are "
            f"kept), or choose another {kind.option}"
        )


@contextmanager
def staged(kind: OwnedFolder, target: Path, overwrite: bool) -> Iterator[Path]:
    """A fresh folder beside ``target`` to write into; swapped in when the block ends without error.

    On an error the staged folder is removed and ``target`` is left as it was.
    """
    check_target(kind, target, overwrite)
    shown, target = target, real_folder(kind, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        _publish(kind, staging, target, shown)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(kind: OwnedFolder, staging: Path, target: Path, shown: Path) -> None:
    entries = sorted(p.name for p in staging.iterdir())
    manifest = {
        "written_by": kind.writer,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "entries": entries,
        "files": sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if not p.is_dir()),
    }
    (staging / kind.manifest).write_text(json.dumps(manifest, indent=2) + "\n")
    if not target.exists() or not any(target.iterdir()):
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
        return
    _swap_in(kind, staging, target, entries, shown)


def _swap_in(kind: OwnedFolder, staging: Path, target: Path, entries: list[str], shown: Path) -> None:
    """Replace tonetune's old entries in ``target`` by the staged ones; nothing else is touched."""
    manifest = kind.read_manifest(target) or {}
    old = set(manifest.get("entries", []))
    clashes = [name for name in entries if (target / name).exists() and name not in old]
    clashes += _foreign_files(target, old, manifest.get("files"))
    if clashes:
        raise DataError(
            f"{kind.option}={shown}: {', '.join(clashes[:5])} there {'is' if len(clashes) == 1 else 'are'} "
            "not tonetune's; nothing was changed: "
            f"move it or choose another {kind.option}"
        )
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    for name in sorted(old | {kind.manifest}):
        if (target / name).exists() or (target / name).is_symlink():
            os.replace(target / name, previous / name)
    for name in [*entries, kind.manifest]:
        os.replace(staging / name, target / name)
    shutil.rmtree(previous)


def _foreign_files(target: Path, entries: set[str], files: list[str] | None) -> list[str]:
    """Files inside tonetune's own folders that it did not write (someone added them since)."""
    if files is None:  # a manifest from before files were listed
        return []
    known = set(files)
    return [
        rel
        for name in sorted(entries)
        if (target / name).is_dir()
        for path in sorted((target / name).rglob("*"))
        if not path.is_dir() and (rel := str(path.relative_to(target))) not in known
    ]
