"""report.md: what was evaluated, a table of every metric by contestant, and answers side by side."""

from __future__ import annotations

from typing import Any

from tonetune.evaluation.plots import REFERENCE

# The metrics a reader looks at first (the CLI table, the model card).
HEADLINE = [
    "tone_classifier",
    "marker/all",
    "length_ratio",
    "relevance_ratio",
    "stopped",
    "reference_ppl",
    "judge/fidelity",
]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return "" if value is None else str(value)


def metrics_table(metrics: dict[str, dict[str, float]], names: list[str] | None = None) -> str:
    """Markdown table: one row per metric (all, or ``names``), one column per contestant."""
    columns = list(metrics)
    found = list(dict.fromkeys(name for scores in metrics.values() for name in scores))
    names = [n for n in names if n in found] if names else found
    lines = ["| metric | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(_cell(metrics[c].get(name)) for c in columns) + " |")
    return "\n".join(lines)


def render_report(
    context: dict[str, Any],
    metrics: dict[str, dict[str, float]],
    questions: list[str],
    answers: dict[str, list[str]],
    samples: int,
    judge: dict[str, Any] | None,
) -> str:
    """The whole report as Markdown."""
    lines = [
        f"# Does `{context['run_name']}` speak as {context['persona']}?",
        "",
        f"- Run: `{context['run_dir']}`",
        f"- Base model: `{context['base_model']}`; adapter: `{context['adapter']}`",
        f"- Data: `{context['data']}`, split `{context['split']}` ({len(questions)} questions)",
        f"- Fine-tuned with the persona prompt: {context['trained_with_prompt']}",
        f"- Sampling: {context['sampling']}",
        f"- Tone classifier: cross-validated accuracy {context['classifier_accuracy']:.3f} on "
        f"{context['classifier_held_out']} answers (persona: the teacher's train answers; neutral: the base "
        "model's own answers to the same questions)",
        f"- Contestants: {', '.join(c for c in metrics if c != REFERENCE)}; `{REFERENCE}` is the teacher's "
        "answers to the same questions",
        "",
        "## Metrics",
        "",
        metrics_table(metrics),
        "",
        "![metrics](plots/metrics.png)",
        "",
        "![answer lengths](plots/answer_lengths.png)",
        "",
    ]
    if judge:
        lines += [
            "## LLM judge",
            "",
            f"Judge: `{judge['model']}`; each pair judged in both orders, a "
            "preference that flips with the order counts as a tie.",
            "",
            "| opponent | win | loss | tie | invalid | win rate |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for opponent, s in judge["pairwise"].items():
            lines.append(
                f"| {opponent} | {s['win']} | {s['loss']} | {s['tie']} | {s['invalid']} | "
                f"{s['win_rate']:.3f} |"
            )
        lines.append("")
    lines += ["## Sample answers", ""]
    for i, question in enumerate(questions[:samples]):
        lines += [f"**{i + 1}. {question}**", "", "| contestant | answer |", "| --- | --- |"]
        for name, texts in answers.items():
            lines.append(f"| {name} | {texts[i].replace('|', '/').replace(chr(10), ' ')} |")
        lines.append("")
    return "\n".join(lines)
