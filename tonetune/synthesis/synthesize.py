"""``synthesize(cfg)``: the teacher writes a persona dataset that ``tonetune-train`` reads directly."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import hydra
from datasets import Dataset, DatasetDict

from tonetune.config import command_config
from tonetune.errors import ToneTuneError
from tonetune.llm.cache import ResponseCache
from tonetune.llm.client import LLMClient
from tonetune.llm.endpoints import hide_credentials
from tonetune.llm.local import LocalClient
from tonetune.runtime import instantiate_named, task_wrapper, write_json
from tonetune.schemas import BaseModelConfig, PersonaConfig
from tonetune.schemas.synthesize import SynthesizeConfig
from tonetune.synthesis.answers import Answered, collect_answers
from tonetune.synthesis.card import render_card
from tonetune.synthesis.contrast import collect_contrast, contrast_files, contrast_personas
from tonetune.synthesis.conversations import ConversationWriters, extend_conversations
from tonetune.synthesis.dataset_writer import assign_splits, check_target, write_dataset
from tonetune.synthesis.filters import AnswerFilter
from tonetune.synthesis.preferences import by_split, preference_pairs
from tonetune.synthesis.question_sources import collect_questions
from tonetune.synthesis.seed import seed_answer_report, seed_question_report, seed_rows
from tonetune.synthesis.settings import SynthesisSettings

log = logging.getLogger(__name__)
SPLIT_NAMES = ("train", "validation", "test")


class SynthesisError(ToneTuneError):
    """The teacher's output left nothing to train on."""


@task_wrapper
def synthesize(cfg: SynthesizeConfig | Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Questions, persona answers, follow-ups, filters, splits, preference pairs; writes the dataset.

    ``cfg`` is typed at the door (a composed config becomes a ``SynthesizeConfig``).
    """
    config = command_config(SynthesizeConfig, cfg)
    settings = SynthesisSettings.from_cfg(config)
    hide_credentials_in_saved_configs()
    for target in (settings.data_dir, settings.run_dir / "dataset"):
        check_target(target, settings.overwrite)  # refuse before any work, not after
    cache = ResponseCache(Path(config.paths.response_cache))
    teacher: LLMClient = hydra.utils.instantiate(config.teacher, cache=cache)
    writer: LLMClient | None = None
    check = AnswerFilter(settings.persona, **dataclasses.asdict(settings.filters))
    others = _contrast_cards(settings, teacher)  # an unknown card fails before any teacher call
    try:
        rows, report, filtered = _first_turns(settings, teacher, check)
        if settings.conversations.share > 0:
            writer = _follow_up_writer(config, cache) or teacher
            _extend(settings, ConversationWriters(persona=teacher, user=writer), rows, check, report)
        _assign_splits(rows, settings)
        contrast = _contrast(settings, teacher, others, rows, report)
        pairs = _pairs(config.base_model, settings, teacher, cache, rows, filtered, report)
    finally:
        for client in {id(c): c for c in (teacher, writer) if c is not None}.values():
            client.close()
        cache.close()
    dataset = build_dataset(rows)
    report.update(_usage(settings, teacher, dataset))
    write_json(report, settings.run_dir / "report.json")
    if not rows:
        raise SynthesisError(
            f"the teacher gave no usable answer ({report['questions']['kept']} questions, answers rejected: "
            f"{report['answers']['rejected']}); see {settings.run_dir / 'report.json'}"
        )
    card = render_card(settings.persona, settings.question_set, report)
    files = dataset_files(dataset, card) | by_split(pairs) | contrast_files(contrast)
    write_dataset(dataset, files, settings.run_dir / "dataset", overwrite=settings.overwrite)
    write_dataset(dataset, files, settings.data_dir, overwrite=settings.overwrite)
    _log_to_trackers(config, report, rows)
    log.info("Dataset written to %s (and %s)", settings.data_dir, settings.run_dir / "dataset")
    objects = {"dataset": dataset, "run_dir": settings.run_dir, "rows": rows, "pairs": pairs}
    return report, {**objects, "contrast": contrast}


def hide_credentials_in_saved_configs() -> None:
    """Hydra saved the config and overrides as typed: a password in a URL is hidden there too."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if not hydra_cfg.output_subdir or OmegaConf.is_missing(hydra_cfg.runtime, "output_dir"):
        return  # composed without a run (tests, notebooks): Hydra saved nothing
    for path in (Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir).glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        if (hidden := hide_credentials(text)) != text:
            path.write_text(hidden, encoding="utf-8")


def _extend(
    settings: SynthesisSettings,
    writers: ConversationWriters,
    rows: list[dict[str, Any]],
    check: AnswerFilter,
    report: dict[str, Any],
) -> None:
    """Follow-ups for a share of the conversations (``conversations.*``), counted in the report."""
    extension = extend_conversations(
        writers, settings.persona, rows, settings.conversations, settings.answers, check, settings.seed
    )
    report["conversations"] = extension.report()
    if writers.user is not writers.persona:
        user = writers.user
        report["follow_up_writer"] = {**user.describe(), "usage": dataclasses.asdict(user.usage)}


def _follow_up_writer(config: SynthesizeConfig, cache: ResponseCache) -> LLMClient | None:
    """The client that writes the user's follow-ups when it is not the teacher (``follow_up_writer``)."""
    if config.follow_up_writer is None:
        return None
    return hydra.utils.instantiate(config.follow_up_writer, cache=cache, role="follow_up_writer")


def _first_turns(
    settings: SynthesisSettings, teacher: LLMClient, check: AnswerFilter
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, list[str]]]:
    """The conversations' first turns: the seed data's, or the teacher's answers to collected questions."""
    if settings.seed_data:
        rows = seed_rows(settings.seed_data)
        return rows, {"questions": seed_question_report(rows), "answers": seed_answer_report(rows)}, {}
    questions, question_report = collect_questions(
        settings.questions, settings.question_set, teacher, settings.seed
    )
    answered = collect_answers(teacher, settings.persona, questions, settings.answers, check)
    return (
        conversation_rows(answered),
        {"questions": question_report, "answers": answered.report},
        answered.rejected,
    )


def _contrast_cards(settings: SynthesisSettings, teacher: LLMClient) -> list[PersonaConfig] | None:
    """The contrast personas' cards, or None when the contrast split is off.

    ``contrast.enabled=null`` means on, except for a teacher in this process (``teacher=local``),
    where every answer costs CPU time and the quickstart must stay fast.
    """
    enabled = settings.contrast.enabled
    if enabled is None:
        enabled = not teacher.in_process
    return contrast_personas(settings.contrast, settings.persona) if enabled else None


def _contrast(
    settings: SynthesisSettings,
    teacher: LLMClient,
    others: list[PersonaConfig] | None,
    rows: list[dict[str, Any]],
    report: dict[str, Any],
) -> list[dict[str, Any]]:
    """The contrast split's rows (other personas and plain answers to the same questions), counted."""
    if others is None or not rows:
        return []
    found, report["contrast"] = collect_contrast(
        teacher, settings.persona, others, rows, settings.contrast, settings.answers, settings.filters
    )
    return found


def _pairs(
    student_model: BaseModelConfig,
    settings: SynthesisSettings,
    teacher: LLMClient,
    cache: ResponseCache,
    rows: list[dict[str, Any]],
    filtered: dict[str, list[str]],
    report: dict[str, Any],
) -> list[dict[str, Any]]:
    """The preference split (the student base model answers every conversation's last turn)."""
    if not settings.preferences.enabled or not rows:
        return []
    student = LocalClient(
        student_model, cache=cache, role="base_model", engine=teacher.engine_for(student_model)
    )
    pairs, counts = preference_pairs(rows, student, settings.preferences, filtered)
    report["preferences"] = {"student": student_model.name, **counts}
    return pairs


def _usage(settings: SynthesisSettings, teacher: LLMClient, dataset: DatasetDict) -> dict[str, Any]:
    return {
        "persona": settings.persona.name,
        "question_set": settings.question_set.name,
        "teacher": teacher.describe(),
        "splits": {name: len(split) for name, split in dataset.items()},
        "usage": dataclasses.asdict(teacher.usage),
        "cost": teacher.cost(),
        "data_dir": str(settings.data_dir.resolve()),
    }


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
    """Split by question (all samples and turns of a question stay together), stratified by category.

    Seed data that comes with several splits keeps them.
    """
    if rows and all(row.get("split") for row in rows) and len({row["split"] for row in rows}) > 1:
        return
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


def _log_to_trackers(config: SynthesizeConfig, report: dict[str, Any], rows: list[dict]) -> None:
    """Counts and a table of samples to the configured loggers (W&B)."""
    for logger in instantiate_named(config.logger):
        flat = {
            f"{k}/{kk}": vv
            for k, v in report.items()
            if isinstance(v, dict)
            for kk, vv in v.items()
            if isinstance(vv, int | float)
        }
        logger.log_metrics(flat, step=0)
        if hasattr(logger, "log_table"):
            sample = rows[: config.log_samples]
            logger.log_table(
                "samples",
                columns=["category", "question", "conversation"],
                data=[[r["category"], r["question"], _transcript(r["messages"])] for r in sample],
            )


def _transcript(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)
