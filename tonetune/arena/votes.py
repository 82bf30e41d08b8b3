"""Arena votes: appended as they are cast (a crash loses none), tallied per pair, ranked by Elo.

Each vote is a row in TRL's conversational preference format (``prompt``, ``chosen``, ``rejected``)
plus the contestants' names and the outcome, so ``tonetune-train objective=dpo
data.source=<votes.jsonl>`` trains on the decisive ones (ties and "both bad" hold no preference
and are skipped by the pair reader).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tonetune import stats

DECISIVE = {"A", "B"}
OUTCOMES = {"A", "B", "tie", "both_bad"}
ELO_START, ELO_K = 1000.0, 32.0


def vote_row(question: str, names: Sequence[str], answers: Sequence[str], outcome: str) -> dict[str, Any]:
    """One vote as a preference row (for a tie or "both bad", chosen/rejected keep the A/B order)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {sorted(OUTCOMES)}")
    first = 1 if outcome == "B" else 0
    second = 1 - first
    return {
        "prompt": [{"role": "user", "content": question}],
        "chosen": [{"role": "assistant", "content": answers[first]}],
        "rejected": [{"role": "assistant", "content": answers[second]}],
        "chosen_model": names[first],
        "rejected_model": names[second],
        "outcome": outcome if outcome not in DECISIVE else "preference",
        "shown_as": {"A": names[0], "B": names[1]},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


class VoteLog:
    """The arena's votes file: read at start (votes survive restarts), appended and synced per vote."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = (
            [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            if path.is_file()
            else []
        )

    def append(self, row: dict[str, Any]) -> None:
        """Write one vote durably (on disk before this returns)."""
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.rows.append(row)


def pair_tally(rows: list[dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """Per pair of contestants: votes, wins, ties, "both bad", and the first's win share with its interval."""
    table = []
    for x, y in itertools.combinations(names, 2):
        mine = [r for r in rows if {r["chosen_model"], r["rejected_model"]} == {x, y}]
        wins_x = sum(r["outcome"] == "preference" and r["chosen_model"] == x for r in mine)
        wins_y = sum(r["outcome"] == "preference" and r["chosen_model"] == y for r in mine)
        share = stats.wilson(wins_x, wins_x + wins_y)
        table.append(
            {
                "pair": f"{x} vs {y}",
                "votes": len(mine),
                "wins": f"{wins_x} : {wins_y}",
                "ties": sum(r["outcome"] == "tie" for r in mine),
                "both_bad": sum(r["outcome"] == "both_bad" for r in mine),
                "first_wins": share.value,
                "low": share.low,
                "high": share.high,
            }
        )
    return table


def elo(rows: list[dict[str, Any]], names: Sequence[str]) -> dict[str, float]:
    """Elo ratings from the votes in the order they were cast (a tie counts half; "both bad" nothing)."""
    ratings = dict.fromkeys(names, ELO_START)
    for row in rows:
        if row["outcome"] == "both_bad":
            continue
        a, b = row["chosen_model"], row["rejected_model"]
        for name in (a, b):
            ratings.setdefault(name, ELO_START)
        expected = 1 / (1 + 10 ** ((ratings[b] - ratings[a]) / 400))
        score = 0.5 if row["outcome"] == "tie" else 1.0
        ratings[a] += ELO_K * (score - expected)
        ratings[b] -= ELO_K * (score - expected)
    return dict(sorted(ratings.items(), key=lambda item: -item[1]))
