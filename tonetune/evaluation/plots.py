"""Plots of an evaluation: one bar chart per metric across contestants, and answer lengths."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tonetune.persona import word_count

REFERENCE = "reference"
LOWER_IS_BETTER = {"reference_ppl", "repetition", "empty"}
TARGET_ONE = {"length_ratio", "relevance_ratio"}  # the reference answers' own value


def metric_bars(metrics: dict[str, dict[str, float]], names: list[str], path: Path) -> Path:
    """A grid of bar charts, one per metric; the teacher's reference answers as a dashed line."""
    contestants = [c for c in metrics if c != REFERENCE]
    shown = [m for m in names if any(m in metrics[c] for c in contestants)]
    cols = 4
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    for ax, metric in zip(axes.flat, shown, strict=False):
        values = [metrics[c].get(metric, float("nan")) for c in contestants]
        bars = ax.bar(
            range(len(contestants)), values, color=[colors[i % 10] for i in range(len(contestants))]
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
        target = 1.0 if metric in TARGET_ONE else metrics.get(REFERENCE, {}).get(metric)
        if target is not None:
            ax.axhline(target, color="black", linestyle="--", linewidth=1, label="reference")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_title(
            f"{metric} ({'lower' if metric in LOWER_IS_BETTER else 'higher'} is better)"
            if metric not in TARGET_ONE
            else f"{metric} (1 = reference)",
            fontsize=10,
        )
        ax.set_xticks(range(len(contestants)), contestants, rotation=20, fontsize=8)
        ax.margins(y=0.2)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle("Persona metrics by contestant (dashed: the teacher's reference answers)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def length_histogram(answers: dict[str, list[str]], path: Path) -> Path:
    """Answer length distributions (words) of every contestant against the reference answers."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
