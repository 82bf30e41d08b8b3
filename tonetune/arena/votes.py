"""Arena votes: appended as they are cast (a crash loses none), tallied per pair, ranked by Elo.

Each vote is a row in TRL's conversational preference format (``prompt``, ``chosen``, ``rejected``)
plus the contestants' names and the outcome, so ``tonetune-train objective=dpo
data.source=<votes.jsonl>`` trains on the decisive ones (ties and "both bad" hold no preference
and are skipped by the pair reader).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tonetune import stats
from tonetune.errors import DataError

log = logging.getLogger(__name__)
VOTE_KEYS = ("prompt", "chosen", "rejected", "chosen_model", "rejected_model", "outcome")
DECISIVE = {"A", "B"}
OUTCOMES = {"A", "B", "tie", "both_bad"}
ELO_START, ELO_K = 1000.0, 32.0


def vote_row(
    question: str, names: Sequence[str], answers: Sequence[str], outcome: str, round_id: str | None = None
) -> dict[str, Any]:
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
        **({"round": round_id} if round_id else {}),
    }


class VoteLog:
    """The arena's votes file: read at start (votes survive restarts), appended and synced per vote.

    A last line torn by a crash is moved to ``<votes>.torn`` and reported (``torn``); any other line
    that is not an arena vote (a plain TRL preference file, say) is refused in one line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.torn: str | None = None
        self.rows = self._read() if path.is_file() else []
        self.rounds = {row["round"] for row in self.rows if row.get("round")}

    def _read(self) -> list[dict[str, Any]]:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
        rows = []
        for n, line in numbered:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                if n != numbered[-1][0]:
                    raise DataError(f"votes={self.path}: line {n} is not JSON ({err.msg})") from err
                self._set_aside(line, [text for _, text in numbered[:-1]])
        for (n, _), row in zip(numbered, rows, strict=False):
            missing = [key for key in VOTE_KEYS if not isinstance(row, dict) or key not in row]
            if missing:
                raise DataError(
                    f"votes={self.path}: line {n} is not an arena vote (no {', '.join(missing)}); give the "
                    "arena a votes file of its own (preference files train with data.source=)"
                )
        return rows

    def _set_aside(self, torn: str, kept: list[str]) -> None:
        """Move a torn last line to ``<votes>.torn`` and rewrite the file without it (atomically)."""
        with self.path.with_name(self.path.name + ".torn").open("a", encoding="utf-8") as handle:
            handle.write(torn + "\n")
        staging = self.path.with_name(self.path.name + ".tmp")
        staging.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(staging, self.path)
        self.torn = torn
        log.warning(
            "votes=%s: its last line was torn (a crash while writing); skipped, kept in %s.torn",
            self.path,
            self.path.name,
        )

    def append(self, row: dict[str, Any]) -> None:
        """Write one vote durably (on disk before this returns)."""
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.rows.append(row)
        if row.get("round"):
            self.rounds.add(row["round"])


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
