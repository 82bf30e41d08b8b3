"""Every LLM response on disk the moment it arrives, so no paid request is ever sent twice.

SQLite commits each response in its own transaction: a process killed at any instant leaves
every earlier response readable and no half-written one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from tonetune.llm.requests import ChatRequest, ChatResult


class ResponseCache:
    """Responses keyed by the hash of (model, messages, parameters)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses"
            " (key TEXT PRIMARY KEY, model TEXT, request TEXT, response TEXT)"
        )

    def get(self, key: str) -> ChatResult | None:
        """The stored result for ``key``, or None."""
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return ChatResult.from_json(row[0]) if row else None

    def put(self, key: str, model: str, request: ChatRequest, result: ChatResult) -> None:
        """Store one result durably (committed before this returns)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                (key, model, json.dumps(request.to_dict(), ensure_ascii=False), result.to_json()),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
