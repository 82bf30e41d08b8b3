"""``evaluate(cfg)``: does the fine-tuned model now speak in the persona's tone? Numbers, report, plots."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from tonetune.config import typed
from tonetune.data.loading import Columns, load_conversations
from tonetune.evaluation.classifier import ToneClassifier
from tonetune.evaluation.contestants import Answers, Contestant, LocalContestant
from tonetune.evaluation.judge import judge_fidelity, judge_pairwise
from tonetune.evaluation.lineup import Models, build_contestants, load_models
from tonetune.evaluation.outputs import write_outputs
from tonetune.evaluation.perplexity import answer_nll
from tonetune.evaluation.questions import QuestionSet, evaluation_sets
from tonetune.evaluation.scoring import Scorer, Scores, differences
from tonetune.evaluation.settings import REFERENCE, EvaluationSettings
from tonetune.llm.cache import ResponseCache
from tonetune.llm.local import LocalClient
from tonetune.llm.requests import ChatRequest
from tonetune.models.runs import Run, read_run
from tonetune.persona import single_turn, strip_markers
from tonetune.runtime import instantiate_named, task_wrapper

log = logging.getLogger(__name__)
EVALUATION_DIR = "evaluation"


@dataclass
class SetResult:
    """One question set's answers and scores, by contestant."""

    questions: QuestionSet
    answers: dict[str, Answers] = field(default_factory=dict)
    scores: dict[str, Scores] = field(default_factory=dict)
    differences: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Candidate minus each other contestant, per metric (paired by question)."""


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate ``cfg.run_dir`` with ``cfg.evaluation``.

    The report goes to this run's folder and is mirrored into ``<run_dir>/evaluation``, where
    exports and the model card look for it.
    """
    run = read_run(cfg.run_dir)
    settings = EvaluationSettings.from_cfg(cfg.evaluation)
    out_dir = Path(cfg.paths.output_dir)
    loggers = instantiate_named(cfg.get("logger"))
    result, objects = evaluate_run(
        run, settings, load_models(run), out_dir, loggers, Path(cfg.paths.response_cache)
    )
    shutil.copytree(
        out_dir,
        run.dir / EVALUATION_DIR,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".hydra", "wandb", "*.log"),
    )
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
    cache = ResponseCache(cache_path)
    try:
        contestants = build_contestants(settings, run, models, cache)
        columns = typed(Columns, run.cfg.data.columns)
        sets = evaluation_sets(settings.questions, run.cfg.data.source, columns)
        classifiers = _classifiers(run, settings, models, columns, cache)
        results = [_evaluate_set(s, run, contestants, classifiers, settings) for s in sets]
        judge = _judge(settings, run, results[0], cache)
    finally:
        cache.close()
    result = _result(run, settings, models, results, classifiers, judge)
    plots = write_outputs(out_dir, result, results, settings.samples_in_report, loggers)
    log.info("Evaluation report: %s", out_dir / "report.md")
    return result, {"answers": results[0].answers, "sets": results, "out_dir": out_dir, "plots": plots}


def _classifiers(
    run: Run, settings: EvaluationSettings, models: Models, columns: Columns, cache: ResponseCache
) -> dict[str, ToneClassifier]:
    """The tone classifier and its marker-blind twin, both trained on the run's train answers
    (persona) against the base model's own answers to the same questions (neutral).
    """
    train = load_conversations(run.cfg.data.source, columns)["train"]
    rows = train.select(range(min(settings.classifier.max_examples, len(train))))["messages"]
    questions = [next(m["content"] for m in r if m["role"] == "user") for r in rows]
    persona_texts = [r[-1]["content"] for r in rows]
    neutral = _neutral_answers(run, models, questions, settings, cache)
    folds, seed = settings.classifier.folds, settings.classifier.seed
    plain = ToneClassifier(folds, seed).fit(persona_texts, neutral)
    masked = ToneClassifier(folds, seed, transform=lambda t: strip_markers(t, run.persona)).fit(
        persona_texts, neutral
    )
    return {"tone_classifier": plain, "tone_classifier_masked": masked}


def _neutral_answers(
    run: Run, models: Models, questions: list[str], settings: EvaluationSettings, cache: ResponseCache
) -> list[str]:
    """The base model's own, unprompted answers to the train questions (cached: they never change)."""
    client = LocalClient(
        run.base_model, settings.batch_size, cache=cache, engine=models.base, adapter=models.base_adapter
    )
    requests = [
        ChatRequest.of(single_turn(q), temperature=0.0, max_tokens=settings.sampling.max_new_tokens)
        for q in questions
    ]
    return [r.text for r in client.complete(requests, desc="Neutral answers for the tone classifier")]


def _evaluate_set(
    questions: QuestionSet,
    run: Run,
    contestants: list[Contestant],
    classifiers: dict[str, ToneClassifier],
    settings: EvaluationSettings,
) -> SetResult:
    """Every contestant answers ``questions`` once; every metric, with intervals."""
    scorer = Scorer(
        run.persona, questions, classifiers["tone_classifier"], classifiers["tone_classifier_masked"]
    )
    result = SetResult(questions)
    conversations = [single_turn(q) for q in questions.questions]
    for contestant in contestants:
        answers = contestant.answer(conversations, settings.sampling, settings.batch_size)
        result.answers[contestant.name] = answers
        result.scores[contestant.name] = scorer.score(answers.texts, answers.finish_reasons)
        if questions.references is not None and isinstance(contestant, LocalContestant):
            with contestant.active() as model:
                nll, tokens = answer_nll(
                    model,
                    contestant.engine.tokenizer,
                    questions.questions,
                    questions.references,
                    contestant.system_prompt,
                    settings.batch_size,
                )
            scorer.add_perplexity(result.scores[contestant.name], nll, tokens)
    if scorer.reference is not None:
        result.scores[REFERENCE] = scorer.reference
    candidate = result.scores.get(settings.judge_candidate)
    if candidate is not None:
        result.differences = {
            name: differences(candidate, theirs, scorer.indices)
            for name, theirs in result.scores.items()
            if name not in {settings.judge_candidate, REFERENCE}
        }
    return result


def _judge(
    settings: EvaluationSettings, run: Run, main: SetResult, cache: ResponseCache
) -> dict[str, Any] | None:
    """Pairwise verdicts for the candidate against every other contestant, and fidelity scores."""
    if not settings.judge:
        return None
    judge = hydra.utils.instantiate(settings.judge, cache=cache, role="evaluation.judge")
    candidate, questions = settings.judge_candidate, main.questions.questions
    mine = main.answers[candidate].texts
    pairwise = {
        opponent: judge_pairwise(
            judge, run.persona, questions, mine, theirs.texts, desc=f"Judge: {candidate} vs {opponent}"
        ).summary()
        for opponent, theirs in main.answers.items()
        if opponent != candidate
    }
    fidelity = {
        name: judge_fidelity(judge, run.persona, questions, a.texts, desc=f"Judge: fidelity of {name}")
        for name, a in main.answers.items()
    }
    return {"model": judge.model, "candidate": candidate, "pairwise": pairwise, "fidelity": fidelity}


def _result(
    run: Run,
    settings: EvaluationSettings,
    models: Models,
    results: list[SetResult],
    classifiers: dict[str, ToneClassifier],
    judge: dict[str, Any] | None,
) -> dict[str, Any]:
    """metrics.json: context, and per question set the metrics, intervals and differences."""
    sets = {r.questions.name: _set_summary(r) for r in results}
    main = sets[results[0].questions.name]
    if judge:
        for opponent, summary in judge["pairwise"].items():
            main["metrics"][settings.judge_candidate][f"judge/win_rate_vs_{opponent}"] = summary["win_rate"]
        for name, scores in judge["fidelity"].items():
            main["metrics"][name]["judge/fidelity"] = scores["fidelity"]
    return {
        "context": _context(run, settings, models, results),
        "metrics": main["metrics"],
        "intervals": main["intervals"],
        "differences": main["differences"],
        "sets": sets,
        "judge": judge,
        "classifier": {
            name: {"held_out_accuracy": c.held_out_accuracy, "held_out_size": c.held_out_size}
            for name, c in classifiers.items()
        },
    }


def _set_summary(result: SetResult) -> dict[str, Any]:
    return {
        "source": result.questions.source,
        "questions": len(result.questions),
        "has_references": result.questions.references is not None,
        "metrics": {name: s.values() for name, s in result.scores.items()},
        "intervals": {
            name: {k: [e.low, e.high] for k, e in s.estimates.items()} for name, s in result.scores.items()
        },
        "differences": {
            name: {k: {**e.as_dict(), "significant": e.significant} for k, e in diffs.items()}
            for name, diffs in result.differences.items()
        },
    }


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
        "data": settings.questions.source or run.cfg.data.source,
        "split": settings.questions.split,
        "questions": {r.questions.name: len(r.questions) for r in results},
        "trained_with_prompt": run.trained_with_prompt,
        "sampling": asdict(settings.sampling),
        "one_model_in_memory": models.shared,
        "candidate": settings.judge_candidate,
    }
