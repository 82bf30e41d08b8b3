"""Summarise a multirun folder (grid or Optuna): a row per job with its overrides and metrics, a plot."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from omegaconf import OmegaConf

from tonetune.errors import ToneTuneError

# Training metrics, then the fine-tuned model's headline metrics of tonetune/evaluation/registry.py
# (as the evaluation logs them); tests/test_metric_registry.py checks they are headline metrics there.
SHOWN_METRICS = [
    "val/loss",
    "val/loss_before",
    "train/tokens_per_s",
    "eval/finetuned/tone_classifier",
    "eval/finetuned/marker/all",
]


def collect_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every finished job of the sweep: number, overrides (as a dict) and metrics."""
    if not sweep_dir.is_dir():
        raise ToneTuneError(
            f"sweep_dir={sweep_dir}: no such folder (multirun folders are in outputs/<task>/multiruns/)"
        )
    jobs = []
    for job_dir in sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    ):
        metrics_path, overrides_path = job_dir / "metrics.json", job_dir / ".hydra" / "overrides.yaml"
        if not metrics_path.is_file() or not overrides_path.is_file():
            continue  # a job that failed or is still running
        pairs = (o.split("=", 1) for o in OmegaConf.load(overrides_path) if "=" in o)
        overrides = {key: _parse(value) for key, value in pairs}
        config = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
        jobs.append(
            {
                "job": int(job_dir.name),
                "overrides": overrides,
                "metrics": json.loads(metrics_path.read_text()),
                "optimized_metric": config.get("optimized_metric"),
            }
        )
    if not jobs:
        raise ToneTuneError(f"sweep_dir={sweep_dir}: no finished job (numbered folders with metrics.json)")
    return jobs


def swept_parameters(jobs: list[dict[str, Any]], sweep_dir: Path) -> list[str]:
    """Overrides that differ between jobs, and every parameter of an Optuna search space."""
    keys = list(dict.fromkeys(k for job in jobs for k in job["overrides"]))
    sweeper = _sweeper(sweep_dir)
    searched = set(sweeper.get("params") or {}) if sweeper is not None else set()
    return [k for k in keys if k in searched or len({job["overrides"].get(k) for job in jobs}) > 1]


def direction(sweep_dir: Path, metric: str) -> str:
    """The Optuna study's direction when there is one, else minimise losses and maximise the rest."""
    sweeper = _sweeper(sweep_dir)
    if (sweep_dir / "optimization_results.yaml").is_file() and sweeper is not None and "direction" in sweeper:
        return str(sweeper.direction)
    return "minimize" if "loss" in metric or "ppl" in metric else "maximize"


def _sweeper(sweep_dir: Path) -> Any:
    """The sweeper settings Hydra recorded for the sweep's jobs (None when no job has them)."""
    hydra_cfg = next(sweep_dir.glob("*/.hydra/hydra.yaml"), None)
    return OmegaConf.load(hydra_cfg).hydra.sweeper if hydra_cfg is not None else None


def write_report(sweep_dir: Path, metric: str | None = None) -> dict[str, Any]:
    """Write sweep_report.md, .csv and .png into ``sweep_dir``; return the ranked rows."""
    jobs = collect_jobs(sweep_dir)
    metric = metric or jobs[0]["optimized_metric"] or "val/loss"
    order = direction(sweep_dir, metric)
    params = swept_parameters(jobs, sweep_dir)
    metrics = [metric, *[m for m in SHOWN_METRICS if m != metric and any(m in j["metrics"] for j in jobs)]]
    worst = math.inf if order == "minimize" else -math.inf
    jobs.sort(key=lambda j: j["metrics"].get(metric, worst), reverse=order == "maximize")
    rows = [
        {
            "job": j["job"],
            **{p: j["overrides"].get(p, "") for p in params},
            **{m: j["metrics"].get(m) for m in metrics},
        }
        for j in jobs
    ]
    columns = list(rows[0])
    with (sweep_dir / "sweep_report.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"# Sweep {sweep_dir.name}: {len(rows)} jobs, ranked by {metric} ({order})",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + " --- |" * len(columns),
    ]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    lines += ["", "![sweep](sweep_report.png)", ""]
    (sweep_dir / "sweep_report.md").write_text("\n".join(lines))
    _plot(rows, params, metric, sweep_dir / "sweep_report.png")
    return {"metric": metric, "direction": order, "parameters": params, "rows": rows}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _parse(value: str) -> Any:
    """An override's value as int or float when it is one."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _plot(rows: list[dict[str, Any]], params: list[str], metric: str, path: Path) -> None:
    """The metric against each swept parameter; the best job circled."""
    panels = params or ["job"]
    fig = Figure(figsize=(4.2 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)
    best = rows[0]
    for ax, param in zip(axes[0], panels, strict=True):
        xs, ys = [], []
        for row in rows:
            if row.get(metric) is not None:
                xs.append(_number(row[param]))
                ys.append(row[metric])
        ax.scatter(xs, ys, color="tab:blue")
        if best.get(metric) is not None:
            ax.scatter(
                [_number(best[param])],
                [best[metric]],
                s=160,
                facecolors="none",
                edgecolors="tab:red",
                label=f"best (job {best['job']})",
            )
            ax.legend(fontsize=8)
        if param == "optimizer.lr":
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
    fig.suptitle(f"{metric} across {len(rows)} jobs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
