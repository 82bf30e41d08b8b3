"""The report's sections beyond single questions: pressure, multi-turn drift, capability kept."""

from __future__ import annotations

from typing import Any

from tonetune.evaluation.multi_turn import turn_metric_names
from tonetune.evaluation.registry import names
from tonetune.markdown import differences_table, metrics_table, with_interval


def pressure_lines(pressure: dict[str, Any] | None, candidate: str) -> list[str]:
    """Persona share per probe and overall, and the candidate's differences."""
    if not pressure:
        return []
    contestants = list(pressure["by_probe"])
    lines = [
        "## Persona under pressure",
        "",
        f"{pressure['questions']} questions x {len(pressure['probes'])} probes; tone classifier share per "
        "probe "
        "(95% intervals by question):",
        "",
        "| probe | " + " | ".join(contestants) + " |",
        "| --- |" + " ---: |" * len(contestants),
    ]
    for probe in pressure["probes"]:
        cells = [_cell(pressure["by_probe"][c][probe]["tone_classifier"]) for c in contestants]
        lines.append(f"| {probe} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Over all probes:",
        "",
        metrics_table(pressure["metrics"], names(pressure=True), pressure["intervals"]),
    ]
    if pressure["differences"]:
        lines += ["", differences_table(candidate, pressure["differences"], names(pressure=True))]
    return [*lines, "", "![pressure](plots/pressure.png)", ""]


def multi_turn_lines(multi_turn: dict[str, Any] | None, candidate: str) -> list[str]:
    """Persona share per turn (and repeated answers), the summaries and the candidate's differences."""
    if not multi_turn:
        return []
    contestants = list(multi_turn["per_turn"])
    lines = [
        "## Multi-turn drift",
        "",
        f"{multi_turn['conversations']} conversations of {multi_turn['turns']} user turns (a question, then "
        "follow-ups); tone classifier share per turn, and the share of answers repeating the previous "
        "answer:",
        "",
        "| turn | " + " | ".join(contestants) + " |",
        "| --- |" + " ---: |" * len(contestants),
    ]
    for turn in range(multi_turn["turns"]):
        cells = []
        for c in contestants:
            values = multi_turn["per_turn"][c][turn]
            repeat = (
                f"; repeats {values['repeats_previous']['value']:.2f}" if "repeats_previous" in values else ""
            )
            cells.append(_cell(values["tone_classifier"]) + repeat)
        lines.append(f"| {turn + 1} | " + " | ".join(cells) + " |")
    summaries = turn_metric_names(multi_turn["turns"])
    lines += ["", metrics_table(multi_turn["metrics"], summaries, multi_turn["intervals"])]
    if multi_turn["differences"]:
        lines += ["", differences_table(candidate, multi_turn["differences"], summaries)]
    return [*lines, "", "![multi-turn](plots/multi_turn.png)", ""]


def capability_lines(capability: dict[str, Any] | None) -> list[str]:
    """Accuracy before and after fine-tuning on each lm-eval task, with the delta's interval."""
    if not capability:
        return []
    lines = [
        "## Capability kept (lm-eval)",
        "",
        "| task | items | base | fine-tuned | fine-tuned - base |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for task, r in capability.items():
        delta = r["delta"]
        mark = "" if delta["significant"] else " (not significant)"
        lines.append(
            f"| {task} | {r['items']} | {_cell(r['base'])} | {_cell(r['finetuned'])} | "
            f"{delta['value']:+.3f} [{delta['low']:+.3f}, {delta['high']:+.3f}]{mark} |"
        )
    return [*lines, ""]


def _cell(estimate: dict[str, float]) -> str:
    return with_interval(estimate["value"], [estimate["low"], estimate["high"]])


KIND_NAMES = {"other": "other personas", "plain": "plain", "base": "base", "base_short": "base cut to length"}


def validity_lines(classifier: dict[str, Any]) -> list[str]:
    """One line per reader: its true- and false-positive rates on answers to held-out questions."""
    lines = []
    for name, info in classifier.items():
        if "validity" not in info:
            continue
        v = info["validity"]
        rates = [f"TPR {_rate(v['tpr'])}"]
        rates += [f"FPR {KIND_NAMES[k]} {_rate(r)}" for k, r in v["fpr"].items() if k in KIND_NAMES]
        verdict = {
            "flagged": "**FLAGGED: " + "; ".join(v["flags"]) + "**",
            "untested": "**UNTESTED: no other persona's answers to check it on** (evaluation.contrast.files)",
            "ok": f"ok (FPR on other personas at most {v['max_fpr']:.0%})",
        }[info["status"]]
        lines.append(
            f"- Validity of `{name}` ({', '.join(rates)}; balanced accuracy {v['balanced_accuracy']:.3f}, "
            f"length only {v['length_baseline_accuracy']:.3f}): {verdict}"
        )
    if not lines:
        return []
    note = (
        "Reader validity (answers to held-out questions, grouped folds; Wilson 95% intervals, hits/n; "
        "trained against: "
        + ", ".join(next(i for i in classifier.values() if "validity" in i)["validity"]["negatives"])
        + "):"
    )
    return [note, "", *lines, ""]


def speaker_lines(classifier: dict[str, Any], metrics: dict[str, dict[str, float]]) -> list[str]:
    """Who is speaking: the N-way reader's held-out confusion matrix, then each contestant's row."""
    held_out = classifier.get("speakers")
    if not held_out:
        return []
    classes = held_out["classes"]
    header = ["| answers of | " + " | ".join(classes) + " |", "| --- |" + " ---: |" * len(classes)]
    lines = [
        "## Who is speaking",
        "",
        "An N-way reader over the persona set reads every answer as one speaker. Its own answers to "
        "held-out questions first (share read as each, Wilson 95% interval):",
        "",
        *header,
    ]
    for truth, row in held_out["rows"].items():
        lines.append(f"| {truth} | " + " | ".join(_rate(row[c], counts=False) for c in classes) + " |")
    lines += ["", "Each contestant's answers (share read as each speaker):", "", *header]
    for name, values in metrics.items():
        if f"speaker/{classes[0]}" in values:
            lines.append(
                f"| {name} | " + " | ".join(f"{values.get(f'speaker/{c}', 0):.3f}" for c in classes) + " |"
            )
    return [*lines, "", "![who is speaking](plots/speakers.png)", ""]


def _rate(rate: dict[str, Any], counts: bool = True) -> str:
    text = with_interval(rate["value"], [rate["low"], rate["high"]])
    return f"{text} ({rate['hits']}/{rate['n']})" if counts else text
