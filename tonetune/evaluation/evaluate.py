"""``evaluate(cfg)``: does the fine-tuned model now speak in the persona's tone? Numbers, report, plots.

For every contestant: the question sets (each metric with a 95% interval, differences paired by
question), the persona under pressure, multi-turn drift, general capability (lm-eval), and an
optional LLM judge.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tonetune.config import command_config, typed
from tonetune.data.loading import Columns
from tonetune.data.question_lists import QuestionSet
from tonetune.evaluation.answering import AnswerPool, Ticket
from tonetune.evaluation.capability import capability
from tonetune.evaluation.contestants import Contestant, LocalContestant
from tonetune.evaluation.judge import run_judge
from tonetune.evaluation.lineup import Models, build_contestants, load_models
from tonetune.evaluation.multi_turn import ask_first_turn, drift
from tonetune.evaluation.outputs import write_outputs
from tonetune.evaluation.perplexity import answer_nll
from tonetune.evaluation.pressure import ask_pressure, pressure_report
from tonetune.evaluation.question_sets import evaluation_sets
from tonetune.evaluation.registry import names
from tonetune.evaluation.results import EvaluationResult, SetResult, SetSummary
from tonetune.evaluation.scoring import Scorer, Scores, ToneReader, compare
from tonetune.evaluation.settings import NEUTRAL_CONTESTANT, REFERENCE, EvaluationSettings
from tonetune.evaluation.tone import base_client, neutral_sampling, reader_examples, train_tone_reader
from tonetune.llm.cache import ResponseCache
from tonetune.models.runs import Run, read_run
from tonetune.persona import single_turn
from tonetune.runtime import Stopwatch, instantiate_named, task_wrapper
from tonetune.schemas import PressureProbe
from tonetune.schemas.commands import EvaluateConfig

log = logging.getLogger(__name__)
EVALUATION_DIR = "evaluation"


@task_wrapper
def evaluate(cfg: EvaluateConfig | Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate ``run_dir`` with ``evaluation.*`` (the config typed at the door).

    The report goes to this run's folder and is mirrored into ``<run_dir>/evaluation``, where
    exports and the model card look for it.
    """
    config = command_config(EvaluateConfig, cfg)
    settings = EvaluationSettings.from_cfg(config.evaluation)
    run = read_run(config.run_dir)
    out_dir = Path(config.paths.output_dir)
    loggers = instantiate_named(config.logger)
    result, objects = evaluate_run(
        run, settings, load_models(run, settings.dtype), out_dir, loggers, Path(config.paths.response_cache)
    )
    ignore = shutil.ignore_patterns(".hydra", "wandb", "*.log")
    shutil.copytree(out_dir, run.dir / EVALUATION_DIR, dirs_exist_ok=True, ignore=ignore)
    return result, objects


def evaluate_run(
    run: Run,
    settings: EvaluationSettings,
    models: Models,
    out_dir: Path,
    loggers: list[Any],
    cache_path: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Answer every question set with every contestant, score, and write metrics, report and plots."""
    cache, clock = ResponseCache(cache_path), Stopwatch()
    try:
        contestants = build_contestants(settings, run, models, cache)
        columns = typed(Columns, run.data.columns)
        sets = evaluation_sets(settings.questions, run.data.source, columns)
        neutral = LocalContestant(NEUTRAL_CONTESTANT, models.base, models.base_adapter)
        base = base_client(run, models, settings, cache)
        pool = AnswerPool([*contestants, neutral], settings.batch_size, base)
        examples = reader_examples(run, settings, columns)  # questions, persona answers
        openings = [single_turn(q) for q in examples[0]]
        neutral_asked = pool.ask(neutral.name, openings, neutral_sampling(settings))
        asked = [
            {
                c.name: pool.ask(c.name, [single_turn(q) for q in s.questions], settings.sampling)
                for c in contestants
            }
            for s in sets
        ]
        pressure = _ask_pressure(pool, contestants, sets[0], settings, run.persona.pressure)
        first_turn = _ask_first_turn(pool, contestants, sets[0], settings)
        with clock.section("answers (question sets, pressure, first turns, the readers' base answers)"):
            pool.run()
        with clock.section("tone readers (training, validity)"):
            neutral_texts = pool.answers(neutral_asked).texts
            tone, classifiers = train_tone_reader(run, settings, *examples, neutral_texts)
        with clock.section("scoring"):
            results = [
                _score_set(s, tickets, pool, contestants, tone, settings)
                for s, tickets in zip(sets, asked, strict=True)
            ]
        sections = _sections(pool, pressure, first_turn, sets[0], tone, models, settings, clock)
        with clock.section("judge"):
            judge = run_judge(
                settings, run.persona, results[0].questions.questions, results[0].answers, cache
            )
    finally:
        cache.close()
    timings = {"seconds": {name: round(s, 1) for name, s in clock.seconds.items()}}
    result = _result(run, settings, models, results, classifiers, judge) | sections | {"timings": timings}
    plots = write_outputs(out_dir, result, results, settings.samples_in_report, loggers)
    log.info("Evaluation report: %s", out_dir / "report.md")
    return result, {"answers": results[0].answers, "sets": results, "out_dir": out_dir, "plots": plots}


def _score_set(
    questions: QuestionSet,
    tickets: dict[str, Ticket],
    pool: AnswerPool,
    contestants: list[Contestant],
    tone: ToneReader,
    settings: EvaluationSettings,
) -> SetResult:
    """Every metric of every contestant's answers to ``questions``, with intervals and differences."""
    scorer = Scorer(questions, tone)
    result = SetResult(questions)
    for contestant in contestants:
        answers = pool.answers(tickets[contestant.name])
        result.answers[contestant.name] = answers
        result.scores[contestant.name] = scorer.score(answers.texts, answers.finish_reasons)
        if questions.references is not None and isinstance(contestant, LocalContestant):
            _add_perplexity(scorer, result.scores[contestant.name], contestant, questions)
    per_answer = {name: s.per_answer for name, s in result.scores.items()}
    result.differences = compare(per_answer, settings.judge_candidate, scorer.indices)
    if scorer.reference is not None:
        result.scores[REFERENCE] = scorer.reference
    return result


def _add_perplexity(
    scorer: Scorer, scores: Scores, contestant: LocalContestant, questions: QuestionSet
) -> None:
    """Reference answers' perplexity (in batches of its own: its memory grows with every token's logits)."""
    with contestant.active() as model:
        nll, tokens = answer_nll(
            model,
            contestant.engine.tokenizer,
            questions.questions,
            questions.references,
            contestant.system_prompt,
        )
    scorer.add_perplexity(scores, nll, tokens)


def _ask_pressure(
    pool: AnswerPool,
    contestants: list[Contestant],
    main: QuestionSet,
    settings: EvaluationSettings,
    persona_probes: list[PressureProbe],
) -> tuple | None:
    """Queue the pressure suite with the question sets (answered in the same batches), or None when off."""
    probes = [*settings.pressure.probes, *persona_probes]
    if not settings.pressure.questions or not probes:
        return None
    sampling = replace(settings.sampling, max_new_tokens=settings.pressure.max_new_tokens)
    return probes, ask_pressure(
        pool, contestants, main.questions[: settings.pressure.questions], probes, sampling
    )


def _ask_first_turn(
    pool: AnswerPool, contestants: list[Contestant], main: QuestionSet, settings: EvaluationSettings
) -> dict[str, Ticket] | None:
    """Queue the multi-turn conversations' opening questions with the question sets, or None when off."""
    multi_turn = settings.multi_turn
    if not multi_turn.conversations or multi_turn.turns < 2:
        return None
    sampling = replace(settings.sampling, max_new_tokens=multi_turn.max_new_tokens)
    return ask_first_turn(pool, contestants, main.questions[: multi_turn.conversations], sampling)


def _sections(
    pool: AnswerPool,
    pressure: tuple | None,
    first_turn: dict[str, Ticket] | None,
    main: QuestionSet,
    tone: ToneReader,
    models: Models,
    settings: EvaluationSettings,
    clock: Stopwatch,
) -> dict[str, Any]:
    """Persona under pressure, multi-turn drift and capability kept (each can be turned off), timed."""
    sections: dict[str, Any] = {}
    candidate, multi_turn = settings.judge_candidate, settings.multi_turn
    if pressure is not None:
        probes, asked = pressure
        questions = main.questions[: settings.pressure.questions]
        sections["pressure"] = pressure_report(pool, asked, questions, probes, tone, candidate)
    if first_turn is not None:
        sampling = replace(settings.sampling, max_new_tokens=multi_turn.max_new_tokens)
        questions = main.questions[: multi_turn.conversations]
        with clock.section("multi-turn"):
            sections["multi_turn"] = drift(pool, first_turn, questions, multi_turn, sampling, tone, candidate)
    if settings.capability.tasks:
        base, finetuned = (models.base, models.base_adapter), (models.finetuned, models.finetuned_adapter)
        with clock.section("capability"):
            sections["capability"] = capability(base, finetuned, settings.capability)
    return sections


def _result(
    run: Run,
    settings: EvaluationSettings,
    models: Models,
    results: list[SetResult],
    classifiers: dict[str, Any],
    judge: dict[str, Any] | None,
) -> EvaluationResult:
    """metrics.json: context, and per question set the metrics, intervals and differences."""
    sets = {r.questions.name: _set_summary(r) for r in results}
    return EvaluationResult(
        context=_context(run, settings, models, results),
        sets=_with_judge(sets, judge, settings.judge_candidate),
        judge=judge,
        classifier=classifiers,
    )


def _set_summary(result: SetResult) -> SetSummary:
    return SetSummary(
        source=result.questions.source,
        questions=len(result.questions),
        has_references=result.questions.references is not None,
        estimates={name: dict(s.estimates) for name, s in result.scores.items()},
        differences=result.differences,
    )


def _with_judge(
    sets: dict[str, SetSummary], judge: dict[str, Any] | None, candidate: str
) -> dict[str, SetSummary]:
    """The judge's win rates (the candidate's) and fidelity (each contestant's) on the main set."""
    if not judge:
        return sets
    unbounded: dict[str, dict[str, float]] = {candidate: {}}
    for opponent, summary in judge["pairwise"].items():
        unbounded[candidate][f"judge/win_rate_vs_{opponent}"] = summary["win_rate"]
    for name, scores in judge["fidelity"].items():
        unbounded.setdefault(name, {})["judge/fidelity"] = scores["fidelity"]
    name, main = next(iter(sets.items()))
    return {**sets, name: replace(main, unbounded=unbounded)}


def _context(
    run: Run, settings: EvaluationSettings, models: Models, results: list[SetResult]
) -> dict[str, Any]:
    adapter = run.adapter
    adapter_text = adapter.name + (
        f" (r={adapter.r}, alpha={adapter.alpha})" if adapter.kind.value == "lora" else ""
    )
    return {
        "run_dir": str(run.dir),
        "run_name": run.name,
        "persona": run.persona.display_name,
        "base_model": run.base_model.name,
        "adapter": adapter_text,
        "data": settings.questions.source or run.data.source,
        "split": settings.questions.split,
        "questions": {r.questions.name: len(r.questions) for r in results},
        "trained_with_prompt": run.trained_with_prompt,
        "sampling": asdict(settings.sampling),
        "decoded_in": models.finetuned.dtype,
        "one_model_in_memory": models.shared,
        "candidate": settings.judge_candidate,
        # what a model card shows, from the registry (serving/ reads it here: stages never import each other)
        "card_metrics": names(card=True),
    }
