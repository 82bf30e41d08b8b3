"""Seed data: an existing dataset's conversations as the first turns, with the counts a card shows."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tonetune.data.loading import load_conversations


def seed_rows(source: str) -> list[dict[str, Any]]:
    """Conversations of an existing dataset (chat or question/answer rows) as first turns, splits kept."""
    data = load_conversations(source)
    return [
        {
            "messages": row["messages"],
            "question": next(m["content"] for m in row["messages"] if m["role"] == "user"),
            "category": row.get("category") or "seed",
            "split": split if len(data) > 1 else "",
            "sample": 0,
        }
        for split, rows in data.items()
        for row in rows
    ]


def seed_question_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The question counts of seed data (nothing generated; every question kept)."""
    return {
        "source": "seed_data",
        "generated": 0,
        "from_bank": 0,
        "from_files": 0,
        "unparseable_lists": 0,
        "exact_duplicates": 0,
        "near_duplicates": 0,
        "near_duplicate_threshold": 1.0,
        "kept": len({r["question"] for r in rows}),
        "by_category": dict(Counter(r["category"] for r in rows)),
    }


def seed_answer_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer counts of seed data (nothing requested; every answer kept)."""
    return {"requested": 0, "kept": len(rows), "rejected": {}, "questions_without_answer": 0}
