"""Plots of an evaluation: a bar per contestant and metric (with 95% error bars), lengths, and curves.

Matplotlib's object API (``Figure``) renders to files without a GUI backend or global state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from tonetune.evaluation.registry import Better, better
from tonetune.evaluation.settings import REFERENCE
from tonetune.persona import word_count


def metric_bars(
    metrics: dict[str, dict[str, float]],
    names: list[str],
    path: Path,
    intervals: dict[str, dict[str, list[float]]] | None = None,
    title: str = "Persona metrics by contestant (bars: 95% intervals; dashed: the reference answers)",
) -> Path:
    """A grid of bar charts, one per metric, with 95% intervals; the reference answers dashed."""
    intervals = intervals or {}
    contestants = [c for c in metrics if c != REFERENCE]
    shown = [name for name in names if any(name in metrics[c] for c in contestants)]
    cols = 4
    rows = max(1, math.ceil(len(shown) / cols))
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, metric in zip(axes.flat, shown, strict=False):
        _bars(ax, metric, contestants, metrics, intervals)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _bars(ax: Any, metric: str, contestants: list[str], metrics: dict, intervals: dict) -> None:
    values = [metrics[c].get(metric, math.nan) for c in contestants]
    values = [math.nan if v is None else v for v in values]
    errors = [[0.0] * len(values), [0.0] * len(values)]
    for i, c in enumerate(contestants):
        bounds = intervals.get(c, {}).get(metric)
        if bounds and not any(b is None or math.isnan(b) for b in bounds) and not math.isnan(values[i]):
            errors[0][i], errors[1][i] = max(values[i] - bounds[0], 0), max(bounds[1] - values[i], 0)
    colors = [f"C{i % 10}" for i in range(len(contestants))]
    bars = ax.bar(range(len(contestants)), values, yerr=errors, capsize=4, color=colors)
    ax.bar_label(bars, fmt="%.2f", fontsize=8, label_type="center")
    direction = better(metric)
    target = 1.0 if direction is Better.ONE else metrics.get(REFERENCE, {}).get(metric)
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", linewidth=1, label="reference")
        ax.legend(fontsize=7, loc="lower right")
    suffix = "" if direction is Better.ONE else " is better"
    ax.set_title(f"{metric} ({direction.value}{suffix})", fontsize=10)
    ax.set_xticks(range(len(contestants)), contestants, rotation=20, fontsize=8)
    ax.margins(y=0.2)


def length_histogram(answers: dict[str, list[str]], path: Path) -> Path:
    """Answer length distributions (words) of every contestant against the reference answers."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    longest = max((word_count(a) for texts in answers.values() for a in texts), default=1)
    bins = range(0, longest + 5, max(1, (longest + 5) // 30))
    for name, texts in answers.items():
        style = {"color": "black", "linewidth": 2.5} if name == REFERENCE else {"linewidth": 1.5}
        ax.hist([word_count(a) for a in texts], bins=bins, histtype="step", label=name, **style)
    ax.set_xlabel("answer length (words)")
    ax.set_ylabel("answers")
    ax.set_title("Answer lengths against the reference answers")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def curves(
    series: dict[str, list[dict[str, float]]], path: Path, title: str, xlabel: str, ylabel: str
) -> Path:
    """One line per contestant with a 95% band: ``series[name][i]`` holds value, low, high at step i+1."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for i, (name, points) in enumerate(series.items()):
        xs = list(range(1, len(points) + 1))
        ax.plot(xs, [p["value"] for p in points], marker="o", color=f"C{i % 10}", label=name)
        ax.fill_between(
            xs, [p["low"] for p in points], [p["high"] for p in points], color=f"C{i % 10}", alpha=0.15
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def confusion(rows: dict[str, dict[str, float]], classes: list[str], path: Path, title: str) -> Path:
    """A heat map: one row per contestant (or true speaker), the share of its answers read as each class."""
    fig = Figure(figsize=(1.4 * len(classes) + 3, 0.6 * len(rows) + 2))
    ax = fig.subplots()
    values = [[row.get(c, 0.0) for c in classes] for row in rows.values()]
    image = ax.imshow(values, vmin=0, vmax=1, cmap="Blues", aspect="auto")
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=20, fontsize=8)
    ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
    ax.set_xlabel("read as")
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return _save(fig, path)
