"""``synthesize(cfg)``: the teacher writes a persona dataset that ``tonetune-train`` reads directly."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import hydra
from datasets import Dataset, DatasetDict
from omegaconf import DictConfig

from tonetune.config import plain
from tonetune.errors import ToneTuneError
from tonetune.llm.cache import ResponseCache
from tonetune.llm.client import LLMClient
from tonetune.runtime import instantiate_named, task_wrapper, write_json
from tonetune.synthesis.answers import Answered, collect_answers
from tonetune.synthesis.card import render_card
from tonetune.synthesis.dataset_writer import assign_splits, check_target, write_dataset
from tonetune.synthesis.filters import AnswerFilter
from tonetune.synthesis.question_sources import collect_questions
from tonetune.synthesis.settings import SynthesisSettings

log = logging.getLogger(__name__)
SPLIT_NAMES = ("train", "validation", "test")


class SynthesisError(ToneTuneError):
    """The teacher's output left nothing to train on."""


@task_wrapper
def synthesize(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Questions, persona answers, filters, splits; writes the dataset to the run folder and ``data_dir``."""
    settings = SynthesisSettings.from_cfg(cfg)
    for target in (settings.data_dir, settings.run_dir / "dataset"):
        check_target(target, settings.overwrite)  # refuse before any work, not after
    cache = ResponseCache(Path(cfg.paths.response_cache))
    teacher: LLMClient = hydra.utils.instantiate(cfg.teacher, cache=cache)
    check = AnswerFilter(settings.persona, **plain(cfg.filters))
    try:
        questions, question_report = collect_questions(
            settings.questions, settings.question_set, teacher, settings.seed
        )
        answered = collect_answers(teacher, settings.persona, questions, settings.answers, check)
    finally:
        teacher.close()
        cache.close()
    rows = conversation_rows(answered)
    _assign_splits(rows, settings)
    dataset = build_dataset(rows)
    report = {
        "persona": settings.persona.name,
        "question_set": settings.question_set.name,
        "teacher": teacher.describe(),
        "questions": question_report,
        "answers": answered.report,
        "splits": {name: len(split) for name, split in dataset.items()},
        "usage": dataclasses.asdict(teacher.usage),
        "cost": teacher.cost(),
        "data_dir": str(settings.data_dir.resolve()),
    }
    write_json(report, settings.run_dir / "report.json")
    if not rows:
        raise SynthesisError(
            f"the teacher gave no usable answer ({question_report['kept']} questions, answers rejected: "
            f"{answered.report['rejected']}); see {settings.run_dir / 'report.json'}"
        )
    files = dataset_files(dataset, render_card(settings.persona, settings.question_set, report))
    write_dataset(dataset, files, settings.run_dir / "dataset", overwrite=settings.overwrite)
    write_dataset(dataset, files, settings.data_dir, overwrite=settings.overwrite)
    _log_to_trackers(cfg, report, rows)
    log.info("Dataset written to %s (and %s)", settings.data_dir, settings.run_dir / "dataset")
    return report, {"dataset": dataset, "run_dir": settings.run_dir, "rows": rows}


def conversation_rows(answered: Answered) -> list[dict[str, Any]]:
    """One row per kept answer: its conversation as chat messages, question and category."""
    return [
        {
            **r,
            "messages": [
                {"role": "user", "content": r["question"]},
                {"role": "assistant", "content": r["answer"]},
            ],
        }
        for r in answered.rows
    ]


def _assign_splits(rows: list[dict[str, Any]], settings: SynthesisSettings) -> None:
    """Split by question (all samples and turns of a question stay together), stratified by category."""
    first = {row["question"]: row["category"] for row in rows}
    split_of = assign_splits(
        list(first), list(first.values()), settings.split.validation, settings.split.test, settings.seed
    )
    for row in rows:
        row["split"] = split_of[row["question"]]


def build_dataset(rows: list[dict[str, Any]]) -> DatasetDict:
    """Rows with messages, question, category and split -> a DatasetDict with those columns."""
    columns = ("messages", "question", "category")
    by_split = {
        name: [{c: r[c] for c in columns} for r in rows if r["split"] == name] for name in SPLIT_NAMES
    }
    return DatasetDict({name: Dataset.from_list(items) for name, items in by_split.items() if items})


def dataset_files(dataset: DatasetDict, card: str) -> dict[str, Any]:
    """What a dataset folder holds besides the DatasetDict: OpenAI JSONL per split, and the card."""
    files: dict[str, Any] = {"README.md": card}
    for split, data in dataset.items():
        files[f"openai_{split}.jsonl"] = [{"messages": m} for m in data["messages"]]
    return files


def _log_to_trackers(cfg: DictConfig, report: dict[str, Any], rows: list[dict]) -> None:
    """Counts and a table of samples to the configured loggers (W&B)."""
    for logger in instantiate_named(cfg.get("logger")):
        flat = {
            f"{k}/{kk}": vv
            for k, v in report.items()
            if isinstance(v, dict)
            for kk, vv in v.items()
            if isinstance(vv, int | float)
        }
        logger.log_metrics(flat, step=0)
        if hasattr(logger, "log_table"):
            sample = rows[: cfg.get("log_samples", 50)]
            logger.log_table(
                "samples",
                columns=["category", "question", "conversation"],
                data=[[r["category"], r["question"], _transcript(r["messages"])] for r in sample],
            )


def _transcript(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)
