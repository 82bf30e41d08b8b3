"""Markdown tables of metrics by contestant, with intervals when there are some (reports, model cards)."""

from __future__ import annotations

import math
from typing import Any


def number(value: Any) -> str:
    """A metric value as a report shows it (n/a for missing or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def with_interval(value: Any, bounds: list[float] | None) -> str:
    """``0.812 [0.700, 0.910]``, or the value alone."""
    if not bounds or any(b is None or (isinstance(b, float) and math.isnan(b)) for b in bounds):
        return number(value)
    return f"{number(value)} [{number(bounds[0])}, {number(bounds[1])}]"


def metrics_table(
    metrics: dict[str, dict[str, Any]],
    names: list[str] | None = None,
    intervals: dict[str, dict[str, list[float]]] | None = None,
) -> str:
    """One row per metric (all, or ``names``), one column per contestant; cells carry their interval."""
    columns = list(metrics)
    found = list(dict.fromkeys(name for scores in metrics.values() for name in scores))
    names = [n for n in names if n in found] if names else found
    intervals = intervals or {}
    lines = ["| metric | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for name in names:
        cells = [
            with_interval(metrics[c].get(name), intervals.get(c, {}).get(name)) if name in metrics[c] else ""
            for c in columns
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def differences_table(
    candidate: str, differences: dict[str, dict[str, dict[str, float]]], names: list[str]
) -> str:
    """``candidate minus X`` per metric, with its interval, marked when the interval contains 0."""
    opponents = list(differences)
    lines = [
        "| metric | " + " | ".join(f"{candidate} - {o}" for o in opponents) + " |",
        "| --- |" + " ---: |" * len(opponents),
    ]
    for name in names:
        if not any(name in differences[o] for o in opponents):
            continue
        cells = []
        for o in opponents:
            d = differences[o].get(name)
            if d is None:
                cells.append("")
                continue
            mark = "" if d["low"] > 0 or d["high"] < 0 else " (not significant)"
            cells.append(f"{d['value']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]{mark}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
