"""Summarise a multirun folder: a ranked table of jobs with their overrides and metrics, and a plot.

Run as:
    tonetune-sweep-report sweep_dir=outputs/train/multiruns/<sweep>
    tonetune-sweep-report sweep_dir=... metric=eval/finetuned/tone_classifier
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from tonetune.cli.errors import exit_on_user_error, run_app
from tonetune.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="sweep_report")
@exit_on_user_error("tonetune-sweep-report")
def _main(cfg: DictConfig) -> None:
    from rich.console import Console
    from rich.table import Table

    from tonetune.config import command_config
    from tonetune.schemas.commands import SweepReportConfig
    from tonetune.workflows import sweep_report

    config = command_config(SweepReportConfig, cfg)
    sweep_dir = Path(config.sweep_dir)
    report = sweep_report(sweep_dir, config.metric)
    table = Table(title=f"{sweep_dir.name}: ranked by {report['metric']} ({report['direction']})")
    columns = list(report["rows"][0])
    for column in columns:
        table.add_column(column)
    for row in report["rows"]:
        table.add_row(*(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
    print(f"Saved {sweep_dir / 'sweep_report.md'}, .csv and .png")


def main() -> None:
    """Console entrypoint ``tonetune-sweep-report``."""
    run_app(_main, "tonetune-sweep-report")


if __name__ == "__main__":
    main()
