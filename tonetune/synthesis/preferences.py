"""The preference split: persona answers (chosen) against the student's own answers (rejected).

For each conversation, the student base model answers the last user turn unprompted (no persona
prompt: what it says by itself); the teacher's answer that passed the filters is chosen, the
student's is rejected. Optionally, the teacher's own answers that the filters rejected pair with the
chosen one too. Stored in TRL's conversational preference format, so the same files train in
tonetune, TRL, LLaMA-Factory or Axolotl.
"""

from __future__ import annotations

import re
from typing import Any

from tonetune.llm.client import LLMClient
from tonetune.llm.requests import ChatRequest
from tonetune.synthesis.settings import PreferenceSettings


def preference_pairs(
    rows: list[dict[str, Any]],
    student: LLMClient,
    settings: PreferenceSettings,
    filtered: dict[str, list[str]],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Pairs for every row (``messages``, ``question``, ``category``, ``split``), and their counts."""
    requests = [
        ChatRequest.of(row["messages"][:-1], temperature=0.0, max_tokens=settings.max_tokens, seed=0)
        for row in rows
    ]
    answers = student.complete(requests, desc="Student answers (rejected side)")
    pairs, counts = [], {"from_student": 0, "from_filters": 0, "skipped_identical": 0}
    for row, answer in zip(rows, answers, strict=True):
        rejected = [("student", answer.text.strip())]
        if settings.filtered_as_rejected and len(row["messages"]) == 2:
            rejected += [("filters", text) for text in filtered.get(row["question"], [])]
        for source, text in rejected:
            if not text or _same(text, row["messages"][-1]["content"]):
                counts["skipped_identical"] += 1
                continue
            pairs.append(pair(row, text, source))
            counts["from_student" if source == "student" else "from_filters"] += 1
    return pairs, counts


def pair(row: dict[str, Any], rejected: str, source: str) -> dict[str, Any]:
    """One TRL conversational preference row, with question, category, split and the rejected source."""
    return {
        "prompt": row["messages"][:-1],
        "chosen": [row["messages"][-1]],
        "rejected": [{"role": "assistant", "content": rejected}],
        "question": row["question"],
        "category": row.get("category", ""),
        "split": row["split"],
        "rejected_by": source,
    }


def by_split(pairs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``preferences_<split>.jsonl`` contents."""
    files: dict[str, list[dict[str, Any]]] = {}
    for p in pairs:
        files.setdefault(f"preferences_{p['split']}.jsonl", []).append(p)
    return files


def _same(a: str, b: str) -> bool:
    words = lambda text: re.findall(r"\w+", text.lower())  # noqa: E731
    return words(a) == words(b)
