"""``synthesize(cfg)``: the teacher writes a persona dataset that ``tonetune-train`` reads directly."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from tonetune.errors import ConfigError, ToneTuneError
from tonetune.models import as_dict
from tonetune.runtime import instantiate_named, task_wrapper, write_json
from tonetune.synthesis.answers import answer_request
from tonetune.synthesis.cache import ResponseCache
from tonetune.synthesis.card import render_card
from tonetune.synthesis.dataset_writer import assign_splits, build_dataset, write_dataset
from tonetune.synthesis.dedup import DedupReport, deduplicate
from tonetune.synthesis.filters import AnswerFilter, count_reasons
from tonetune.synthesis.questions import Question, parse_question_list, question_request, read_question_file
from tonetune.synthesis.teachers import Teacher, describe

log = logging.getLogger(__name__)


class SynthesisError(ToneTuneError):
    """The teacher's output left nothing to train on."""


@task_wrapper
def synthesize(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Questions, persona answers, filters, splits; writes the dataset to the run folder and ``data_dir``."""
    run_dir = Path(cfg.paths.output_dir)
    cache = ResponseCache(Path(cfg.paths.response_cache))
    teacher: Teacher = hydra.utils.instantiate(cfg.teacher, cache=cache)
    try:
        questions, question_report = collect_questions(cfg, teacher)
        rows, answer_report = collect_answers(cfg, teacher, questions)
    finally:
        teacher.close()
        cache.close()
    answered = {row["question"]: row["category"] for row in rows}  # one entry per question, in order
    split_of = assign_splits(
        list(answered), list(answered.values()), cfg.split.validation, cfg.split.test, cfg.seed
    )
    for row in rows:
        row["split"] = split_of[row["question"]]
    dataset = build_dataset(rows)
    report = {
        "persona": cfg.persona.name,
        "question_set": cfg.question_set.name,
        "teacher": describe(teacher),
        "questions": question_report,
        "answers": answer_report,
        "splits": {name: len(split) for name, split in dataset.items()},
        "usage": dataclasses.asdict(teacher.usage),
        "cost": teacher.cost(),
        "data_dir": str(Path(cfg.data_dir).resolve()),
    }
    write_json(report, run_dir / "report.json")
    if not rows:
        raise SynthesisError(
            f"the teacher gave no usable answer ({report['questions']['kept']} questions, answers rejected: "
            f"{report['answers']['rejected']}); see {run_dir / 'report.json'}"
        )
    card = render_card(cfg.persona, cfg.question_set, report)
    write_dataset(dataset, card, run_dir / "dataset")
    write_dataset(dataset, card, Path(cfg.data_dir))
    _log_to_trackers(cfg, report, rows)
    log.info("Dataset written to %s (and %s)", cfg.data_dir, run_dir / "dataset")
    return report, {"dataset": dataset, "run_dir": run_dir, "rows": rows}


def collect_questions(cfg: DictConfig, teacher: Teacher) -> tuple[list[Question], dict[str, Any]]:
    """Questions from files, then from the teacher round by round until each prompt has its share."""
    settings = cfg.questions
    dedup = DedupReport()
    from_files = [q for path in settings.files for q in read_question_file(path)]
    kept = deduplicate(from_files, [], settings.near_duplicate_threshold, dedup)
    generated = unparseable = 0
    wanted = cfg.question_set.questions_per_prompt if settings.generate else 0
    if settings.per_request is not None and settings.per_request < 1:
        raise ConfigError(f"questions.per_request={settings.per_request}: must be at least 1 (or null)")
    per_request = min(wanted, settings.per_request or wanted)
    prompts = [p for p in as_dict(cfg.question_set)["prompts"]]
    for round_index in range(settings.max_rounds):
        short = [p for p in prompts if _count(kept, p["category"]) < wanted]
        if not short:
            break
        asked = [(p, index) for p in short for index in range(_requests_needed(kept, p, wanted, per_request))]
        requests = [
            question_request(
                p["prompt"],
                per_request,
                [q.text for q in kept if q.category == p["category"]],
                seed=round_index * 1000 + index,
                json_mode=teacher.supports_json,
                temperature=settings.temperature,
                tokens_per_question=settings.tokens_per_question,
            )
            for p, index in asked
        ]
        replies = teacher.complete(requests, desc=f"Questions (round {round_index + 1})")
        for (prompt, _), reply in zip(asked, replies, strict=True):
            parsed = parse_question_list(reply.text)
            unparseable += not parsed
            generated += len(parsed)
            candidates = [Question(text, prompt["category"]) for text in parsed]
            fresh = deduplicate(candidates, kept, settings.near_duplicate_threshold, dedup)
            kept.extend(fresh[: wanted - _count(kept, prompt["category"])])
    report = {
        "generated": generated,
        "from_files": len(from_files),
        "unparseable_lists": unparseable,
        "exact_duplicates": dedup.exact,
        "near_duplicates": dedup.near,
        "near_duplicate_threshold": settings.near_duplicate_threshold,
        "kept": len(kept),
        "by_category": dict(Counter(q.category for q in kept)),
    }
    for prompt in prompts:
        if wanted and _count(kept, prompt["category"]) < wanted:
            log.warning(
                "Only %d of %d questions for %r after %d rounds",
                _count(kept, prompt["category"]),
                wanted,
                prompt["category"],
                settings.max_rounds,
            )
    return kept, report


def _requests_needed(kept: list[Question], prompt: dict[str, Any], wanted: int, per_request: int) -> int:
    """Requests of ``per_request`` questions that could fill the prompt's missing share."""
    return math.ceil((wanted - _count(kept, prompt["category"])) / per_request)


def _count(questions: list[Question], category: str) -> int:
    return sum(q.category == category for q in questions)


def collect_answers(cfg: DictConfig, teacher: Teacher, questions: list[Question]) -> tuple[list[dict], dict]:
    """Persona answers; a rejected answer is asked again, up to ``answers.max_attempts`` times."""
    settings = cfg.answers
    check = AnswerFilter(as_dict(cfg.persona), **as_dict(cfg.filters))
    pending = [(q, sample) for q in questions for sample in range(settings.per_question)]
    rows, reasons = [], []
    for attempt in range(settings.max_attempts):
        if not pending:
            break
        requests = [
            answer_request(
                cfg.persona,
                q.text,
                sample,
                attempt,
                settings.temperature,
                settings.max_tokens,
                settings.few_shot,
            )
            for q, sample in pending
        ]
        results = teacher.complete(requests, desc=f"Answers (attempt {attempt + 1})")
        retry = []
        for (question, sample), result in zip(pending, results, strict=True):
            answer = result.text.strip()
            reason = check.reason(answer, result.finish_reason)
            reasons.append(reason)
            if reason:
                retry.append((question, sample))
            else:
                rows.append(
                    {
                        "question": question.text,
                        "answer": answer,
                        "category": question.category,
                        "sample": sample,
                    }
                )
        pending = retry
    answered = {row["question"] for row in rows}
    report = {
        "requested": len(reasons),
        "kept": len(rows),
        "rejected": count_reasons(reasons),
        "questions_without_answer": sum(q.text not in answered for q in questions),
    }
    return rows, report


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
                columns=["category", "question", "answer"],
                data=[[r["category"], r["question"], r["answer"]] for r in sample],
            )
