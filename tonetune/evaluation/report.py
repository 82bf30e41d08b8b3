"""report.md: what was evaluated, the metrics with their intervals, the differences, and answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tonetune.evaluation.length_control import length_lines
from tonetune.evaluation.registry import names
from tonetune.evaluation.report_sections import (
    capability_lines,
    multi_turn_lines,
    pressure_lines,
    speaker_lines,
    validity_lines,
)
from tonetune.evaluation.settings import REFERENCE
from tonetune.markdown import differences_table, metrics_table, number, with_interval


def headline(result: Mapping[str, Any]) -> str:
    """Each reader's validity line, then per question set the headline table and the differences."""
    validity = validity_lines(result["classifier"])
    blocks = ["\n".join(line for line in validity if line)] if validity else []
    for name, s in result["sets"].items():
        lines = [f"Question set `{name}`: {s['questions']} questions from {s['source']}", ""]
        shown = names(headline=True)
        lines.append(metrics_table(s["metrics"], shown, s["intervals"]))
        if s["differences"]:
            lines += ["", differences_table(result["context"]["candidate"], s["differences"], shown)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render_report(
    result: Mapping[str, Any],
    questions: list[str],
    answers: dict[str, list[str]],
    samples: int,
    by_length: dict[str, Any] | None = None,
) -> str:
    """The whole report as Markdown, from metrics.json's content (read, never changed).

    ``by_length``: the tone readers' shares per answer-length bucket (``length_control``).
    """
    context = result["context"]
    lines = [
        f"# Does `{context['run_name']}` speak as {context['persona']}?",
        "",
        *validity_lines(result["classifier"]),
        *_context_lines(result),
        "",
        "## Headline (95% bootstrap intervals by question)",
        "",
        metrics_table(result["metrics"], names(headline=True), result["intervals"]),
        "",
        *(
            [differences_table(context["candidate"], result["differences"], names(headline=True)), ""]
            if result["differences"]
            else []
        ),
        *length_lines(by_length),
        *_reference_note(result),
        *speaker_lines(result["classifier"], result["metrics"]),
        "## Every metric",
        "",
        metrics_table(result["metrics"], None, result["intervals"]),
        "",
        "![metrics](plots/metrics.png)",
        "",
        "![answer lengths](plots/answer_lengths.png)",
        "",
        *_other_sets(result),
        *pressure_lines(result.get("pressure"), context["candidate"]),
        *multi_turn_lines(result.get("multi_turn"), context["candidate"]),
        *capability_lines(result.get("capability")),
        *_judge_lines(result.get("judge")),
        *_timing_lines(result.get("timings")),
        *_samples(questions, answers, samples),
    ]
    return "\n".join(lines)


def _timing_lines(timings: Mapping[str, Any] | None) -> list[str]:
    """Where the evaluation's time went, section by section."""
    if not timings:
        return []
    seconds = timings["seconds"]
    cells = ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items())
    return ["## Time per section", "", f"{cells}; {sum(seconds.values()):.1f} s in all.", ""]


def _context_lines(result: Mapping[str, Any]) -> list[str]:
    context, classifier = result["context"], result["classifier"]
    sets = ", ".join(f"`{name}` ({n} questions)" for name, n in context["questions"].items())
    plain, masked = classifier["tone_classifier"], classifier["tone_classifier_masked"]
    return [
        f"- Run: `{context['run_dir']}`",
        f"- Base model: `{context['base_model']}`; adapter: `{context['adapter']}`"
        + (
            " (base and fine-tuned answer from one copy of the weights)"
            if context["one_model_in_memory"]
            else ""
        ),
        f"- Data: `{context['data']}`; question sets: {sets}",
        f"- Fine-tuned with the persona prompt: {context['trained_with_prompt']}",
        f"- Sampling: {context['sampling']}; local contestants decode in "
        f"{context.get('decoded_in', 'float32')} (`evaluation.dtype`)",
        f"- Tone classifier: cross-validated accuracy {plain['held_out_accuracy']:.3f} on "
        f"{plain['held_out_size']} answers (persona: the training answers; negatives: "
        f"{', '.join(result['classifier'].get('contrast', {}).get('negatives', ['base']))}, see the validity "
        "lines above); "
        f"`tone_classifier_masked` reads the same answers with the persona's markers removed (accuracy "
        f"{masked['held_out_accuracy']:.3f}; what it can tell apart: the negatives in its validity line); "
        "`tone_stylometric` reads only function words, punctuation and word shapes (topic-blind), "
        "`readers_agree` is its agreement with `tone_classifier`",
        "- `marker/all`: every *required* marker of the persona card; optional markers are counted one by "
        "one (`marker/<name>`)",
        f"- Contestants: {', '.join(c for c in result['metrics'] if c != REFERENCE)}"
        + (f"; `{REFERENCE}` is the dataset's own answers" if REFERENCE in result["metrics"] else ""),
    ]


def _reference_note(result: Mapping[str, Any]) -> list[str]:
    if REFERENCE in result["metrics"]:
        return []
    return [
        f"The question list has no reference answers: {', '.join(names(needs_reference=True))} are left out.",
        "",
    ]


def _other_sets(result: Mapping[str, Any]) -> list[str]:
    lines, shown = [], names(headline=True)
    for name, s in list(result["sets"].items())[1:]:
        note = "" if s["has_references"] else " (no reference answers: reference-based metrics left out)"
        lines += [
            f"## Question set `{name}`: {s['questions']} questions from `{s['source']}`{note}",
            "",
            metrics_table(s["metrics"], shown, s["intervals"]),
            "",
        ]
        if s["differences"]:
            lines += [differences_table(result["context"]["candidate"], s["differences"], shown), ""]
    return lines


def _judge_lines(judge: dict[str, Any] | None) -> list[str]:
    if not judge:
        return []
    lines = [
        "## LLM judge",
        "",
        f"Judge: `{judge['model']}`; each pair judged in both orders (a preference that flips with the "
        "order is a tie), told to ignore length. Swap consistency: the share of pairs whose verdict "
        "survived the swap. "
        "Invalid: replies without a readable verdict (n/a when none was readable).",
        "",
        "| opponent | win | loss | tie | invalid | win rate [95%] | swap consistency "
        "| shorter | similar | longer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for opponent, s in judge["pairwise"].items():
        buckets = [f"{number(b['win_rate'])} (n={b['n']})" for b in s["by_length"].values()]
        lines.append(
            f"| {opponent} | {s['win']} | {s['loss']} | {s['tie']} | {s['invalid']} | "
            f"{with_interval(s['win_rate'], s['win_rate_ci'])} | {number(s['swap_consistency'])} | "
            + " | ".join(buckets)
            + " |"
        )
    lines += ["", "| contestant | fidelity (1-10) | unreadable replies |", "| --- | ---: | ---: |"]
    for name, f in judge["fidelity"].items():
        lines.append(f"| {name} | {number(f['fidelity'])} | {f['fidelity_invalid']} |")
    return [*lines, ""]


def _samples(questions: list[str], answers: dict[str, list[str]], samples: int) -> list[str]:
    lines = ["## Sample answers", ""]
    for i, question in enumerate(questions[:samples]):
        lines += [f"**{i + 1}. {question}**", "", "| contestant | answer |", "| --- | --- |"]
        for name, texts in answers.items():
            lines.append(f"| {name} | {texts[i].replace('|', '/').replace(chr(10), ' ')} |")
        lines.append("")
    return lines
