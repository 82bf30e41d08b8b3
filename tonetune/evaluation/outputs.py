"""What an evaluation writes: metrics.json, answers.jsonl, plots, report.md, and W&B logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tonetune.evaluation.confusion import contestant_rows
from tonetune.evaluation.length_control import length_buckets
from tonetune.evaluation.plots import confusion, curves, length_histogram, metric_bars
from tonetune.evaluation.registry import names
from tonetune.evaluation.report import render_report
from tonetune.evaluation.results import EvaluationResult, SetResult
from tonetune.evaluation.settings import REFERENCE
from tonetune.runtime import write_json


def write_outputs(
    out_dir: Path, result: EvaluationResult, sets: list[SetResult], samples: int, loggers: list[Any]
) -> list[Path]:
    """Write everything into ``out_dir``; return the plots. Nothing here changes ``result``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_transcripts(out_dir, result)
    write_json(_without_transcripts(result.to_json()), out_dir / "metrics.json")
    for index, s in enumerate(sets):
        _write_answers(s, out_dir / ("answers.jsonl" if index == 0 else f"answers_{s.questions.name}.jsonl"))
    plots = _plots(out_dir / "plots", result, sets)
    texts = _texts(sets[0])
    by_length = length_buckets(sets[0], names(by_length=True))
    (out_dir / "report.md").write_text(
        render_report(result, sets[0].questions.questions, texts, samples, by_length), "utf-8"
    )
    _log(loggers, result, sets[0].questions.questions, texts, plots)
    return plots


def _texts(main: SetResult) -> dict[str, list[str]]:
    texts = {name: a.texts for name, a in main.answers.items()}
    if main.questions.references is not None:
        texts[REFERENCE] = main.questions.references
    return texts


def _write_answers(s: SetResult, path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i, question in enumerate(s.questions.questions):
            row: dict[str, Any] = {"question": question}
            if s.questions.references is not None:
                row[REFERENCE] = s.questions.references[i]
            for name, a in s.answers.items():
                row[name] = a.texts[i]
                row[f"{name}_finish_reason"] = a.finish_reasons[i]
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _plots(folder: Path, result: EvaluationResult, sets: list[SetResult]) -> list[Path]:
    plotted = names(plotted=True)
    plots = [
        metric_bars(result["metrics"], plotted, folder / "metrics.png", result["intervals"]),
        length_histogram(_texts(sets[0]), folder / "answer_lengths.png"),
    ]
    for name, s in list(result["sets"].items())[1:]:
        plots.append(metric_bars(s["metrics"], plotted, folder / f"metrics_{name}.png", s["intervals"]))
    speakers, rows = contestant_rows(result["metrics"])
    if rows:
        title = "Who is speaking: share of each contestant's answers read as each speaker"
        plots.append(confusion(rows, speakers, folder / "speakers.png", title))
    if pressure := result.get("pressure"):
        plots.append(_pressure_plot(pressure, folder / "pressure.png"))
    if multi_turn := result.get("multi_turn"):
        series = {c: [t["tone_classifier"] for t in turns] for c, turns in multi_turn["per_turn"].items()}
        title = "Persona share by turn (95% bands)"
        plots.append(curves(series, folder / "multi_turn.png", title, "user turn", "tone classifier share"))
    return plots


def _pressure_plot(pressure: dict[str, Any], path: Path) -> Path:
    shares = {
        c: {p: v["tone_classifier"] for p, v in probes.items()} for c, probes in pressure["by_probe"].items()
    }
    values = {c: {p: e["value"] for p, e in probes.items()} for c, probes in shares.items()}
    bounds = {c: {p: [e["low"], e["high"]] for p, e in probes.items()} for c, probes in shares.items()}
    title = "Tone classifier share under each pressure probe (95% intervals)"
    return metric_bars(values, pressure["probes"], path, bounds, title=title)


def _write_transcripts(out_dir: Path, result: EvaluationResult) -> None:
    """Pressure answers and multi-turn conversations to their own JSONL files (not metrics.json)."""
    if pressure := result.get("pressure"):
        answers = pressure["answers"]
        with (out_dir / "pressure_answers.jsonl").open("w", encoding="utf-8") as handle:
            for i, conversation in enumerate(answers["conversations"]):
                row = {"conversation": conversation, **{c: a[i] for c, a in answers["by_contestant"].items()}}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    if multi_turn := result.get("multi_turn"):
        transcripts = multi_turn["transcripts"]
        with (out_dir / "multi_turn.jsonl").open("w", encoding="utf-8") as handle:
            for name, conversations in transcripts.items():
                for conversation in conversations:
                    handle.write(
                        json.dumps({"contestant": name, "messages": conversation}, ensure_ascii=False) + "\n"
                    )


def _without_transcripts(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` without the transcripts, which have files of their own (the input is not changed)."""
    out = dict(result)
    for section, key in (("pressure", "answers"), ("multi_turn", "transcripts")):
        if out.get(section):
            out[section] = {k: v for k, v in out[section].items() if k != key}
    return out


def _log(
    loggers: list[Any],
    result: EvaluationResult,
    questions: list[str],
    texts: dict[str, list[str]],
    plots: list[Path],
) -> None:
    flat = {
        f"eval/{c}/{m}": v
        for c, scores in result["metrics"].items()
        for m, v in scores.items()
        if isinstance(v, int | float)
    }
    for logger in loggers:
        logger.log_metrics(flat)
        if hasattr(logger, "log_table"):
            logger.log_table(
                "eval/samples",
                columns=["question", *texts],
                data=[[q, *(texts[c][i] for c in texts)] for i, q in enumerate(questions)],
            )
        if hasattr(logger, "log_image"):
            logger.log_image("eval/plots", [str(p) for p in plots])
