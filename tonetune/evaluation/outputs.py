"""What an evaluation writes: metrics.json, answers.jsonl, plots, report.md, and W&B logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tonetune.evaluation.plots import curves, length_histogram, metric_bars
from tonetune.evaluation.report import PLOTTED, render_report
from tonetune.evaluation.settings import REFERENCE
from tonetune.runtime import write_json

if TYPE_CHECKING:
    from tonetune.evaluation.evaluate import SetResult


def write_outputs(
    out_dir: Path, result: dict[str, Any], sets: list[SetResult], samples: int, loggers: list[Any]
) -> list[Path]:
    """Write everything into ``out_dir``; return the plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(result, out_dir / "metrics.json")
    for index, s in enumerate(sets):
        _write_answers(s, out_dir / ("answers.jsonl" if index == 0 else f"answers_{s.questions.name}.jsonl"))
    plots = _plots(out_dir / "plots", result, sets)
    texts = _texts(sets[0])
    (out_dir / "report.md").write_text(
        render_report(result, sets[0].questions.questions, texts, samples), "utf-8"
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


def _plots(folder: Path, result: dict[str, Any], sets: list[SetResult]) -> list[Path]:
    plots = [
        metric_bars(result["metrics"], PLOTTED, folder / "metrics.png", result["intervals"]),
        length_histogram(_texts(sets[0]), folder / "answer_lengths.png"),
    ]
    for name, s in list(result["sets"].items())[1:]:
        plots.append(metric_bars(s["metrics"], PLOTTED, folder / f"metrics_{name}.png", s["intervals"]))
    for section in ("pressure", "multi_turn"):
        if result.get(section) and result[section].get("curves"):
            spec = result[section]
            plots.append(
                curves(
                    spec["curves"], folder / f"{section}.png", spec["title"], spec["xlabel"], spec["ylabel"]
                )
            )
    return plots


def _log(
    loggers: list[Any],
    result: dict[str, Any],
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
