"""``evaluate(cfg)``: does the fine-tuned model now speak in the persona's tone? Numbers, report, plots."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from tonetune.data.loading import Columns, load_conversations
from tonetune.embeddings import embed
from tonetune.errors import ConfigError, DataError
from tonetune.evaluation import text_metrics as tm
from tonetune.evaluation.classifier import ToneClassifier
from tonetune.evaluation.contestants import Answers, EndpointContestant, LocalContestant
from tonetune.evaluation.judge import judge_fidelity, judge_pairwise
from tonetune.evaluation.perplexity import answer_perplexity
from tonetune.evaluation.plots import REFERENCE, length_histogram, metric_bars
from tonetune.evaluation.report import render_report
from tonetune.generation import Sampling
from tonetune.models import as_dict, load_causal_lm, load_tokenizer
from tonetune.persona import persona_instructions
from tonetune.runs import load_run_config, load_trained
from tonetune.runtime import instantiate_named, task_wrapper, write_json
from tonetune.synthesis.cache import ResponseCache
from tonetune.synthesis.requests import ChatRequest
from tonetune.synthesis.teachers import LocalTeacher

log = logging.getLogger(__name__)

EVALUATION_DIR = "evaluation"
PLOTTED = [
    "tone_classifier",
    "marker/all",
    "length_in_range",
    "length_ratio",
    "relevance_ratio",
    "similarity_to_reference",
    "rouge_l",
    "stopped",
    "distinct_2",
    "repetition",
    "reference_ppl",
    "judge/fidelity",
]


@dataclass
class Split:
    """Questions of one split, with the teacher's reference answers."""

    questions: list[str]
    references: list[str]


@task_wrapper
def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate ``cfg.run_dir`` with ``cfg.evaluation``.

    The report goes to this run's folder and is mirrored into ``<run_dir>/evaluation``, where
    exports and the model card look for it.
    """
    out_dir = Path(cfg.paths.output_dir)
    result, objects = evaluate_run(
        Path(cfg.run_dir),
        cfg.evaluation,
        out_dir,
        instantiate_named(cfg.get("logger")),
        Path(cfg.paths.response_cache),
    )
    shutil.copytree(
        out_dir,
        Path(cfg.run_dir) / EVALUATION_DIR,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".hydra", "wandb", "*.log"),
    )
    return result, objects


def evaluate_run(
    run_dir: Path, settings: DictConfig, out_dir: Path, loggers: list[Any], cache_path: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Answer the test questions with every contestant, score them, write metrics, report and plots."""
    run_cfg = load_run_config(run_dir)
    persona = as_dict(run_cfg.persona)
    test, train = _load_splits(settings, run_cfg)
    sampling = Sampling(**as_dict(settings.sampling))
    cache = ResponseCache(cache_path)
    base = (load_causal_lm(run_cfg.base_model).eval(), load_tokenizer(run_cfg.base_model))
    contestants = _contestants(settings, run_dir, run_cfg, persona, base, cache)
    answers = {c.name: c.answer(test.questions, sampling, settings.batch_size) for c in contestants}

    neutral = _neutral_answers(run_cfg, base, train.questions, sampling, settings.batch_size, cache)
    classifier = ToneClassifier(settings.classifier.folds, settings.classifier.seed)
    classifier.fit(train.references, neutral)

    question_vectors, reference_vectors = embed(test.questions), embed(test.references)
    reference_row = score(test.references, None, persona, classifier, question_vectors, None, None)
    metrics = {
        name: score(
            a.texts,
            a.finish_reasons,
            persona,
            classifier,
            question_vectors,
            test.references,
            reference_row,
            reference_vectors,
        )
        for name, a in answers.items()
    }
    for contestant in contestants:
        if isinstance(contestant, LocalContestant):
            metrics[contestant.name]["reference_ppl"] = answer_perplexity(
                contestant.model,
                contestant.tokenizer,
                test.questions,
                test.references,
                contestant.system_prompt,
                settings.batch_size,
            )
    metrics[REFERENCE] = reference_row
    judge_summary = _judge(settings, persona, test.questions, answers, metrics, cache)
    cache.close()

    context = _context(run_dir, run_cfg, settings, sampling, classifier, len(test.questions))
    texts = {name: a.texts for name, a in answers.items()} | {REFERENCE: test.references}
    result = {
        "context": context,
        "metrics": metrics,
        "judge": judge_summary,
        "classifier": {
            "held_out_accuracy": classifier.held_out_accuracy,
            "held_out_size": classifier.held_out_size,
            "persona_examples": len(train.references),
            "neutral_examples": len(neutral),
        },
    }
    plots = _write_outputs(out_dir, result, test, answers, texts, settings)
    _log(loggers, metrics, test.questions, texts, plots)
    log.info("Evaluation report: %s", out_dir / "report.md")
    return result, {"answers": answers, "out_dir": out_dir, "neutral": neutral}


def score(
    texts: list[str],
    finish_reasons: list[str] | None,
    persona: dict[str, Any],
    classifier: ToneClassifier,
    question_vectors: np.ndarray,
    references: list[str] | None,
    reference_row: dict[str, float] | None,
    reference_vectors: np.ndarray | None = None,
) -> dict[str, float]:
    """Every offline metric of one contestant's answers."""
    vectors = embed(texts)
    metrics = {
        "tone_classifier": classifier.persona_share(vectors),
        **tm.marker_shares(texts, persona),
        "mean_words": tm.mean_words(texts),
    }
    metrics["relevance"] = float(tm.pairwise_cosine(vectors, question_vectors).mean())
    if references is not None and reference_row is not None:
        metrics["length_ratio"] = metrics["mean_words"] / max(reference_row["mean_words"], 1e-9)
        metrics["relevance_ratio"] = metrics["relevance"] / max(reference_row["relevance"], 1e-9)
        metrics["similarity_to_reference"] = float(tm.pairwise_cosine(vectors, reference_vectors).mean())
        metrics["rouge_l"] = tm.rouge_l(texts, references)
    if finish_reasons is not None:
        metrics["stopped"] = tm.stopped_share(finish_reasons)
    metrics.update(
        {
            "distinct_2": tm.distinct_n(texts, 2),
            "repetition": tm.repetition_share(texts),
            "empty": tm.empty_share(texts),
        }
    )
    return metrics


def _load_splits(settings: DictConfig, run_cfg: DictConfig) -> tuple[Split, Split]:
    columns = Columns(**as_dict(run_cfg.data.columns))
    source = settings.questions.source or run_cfg.data.source
    data = load_conversations(source, columns)
    name = settings.questions.split
    if name not in data:
        raise DataError(f"evaluation.questions.split={name!r}: {source} has splits {sorted(data)}")
    training = data if "train" in data else load_conversations(run_cfg.data.source, columns)
    return (
        _split(data[name], settings.questions.limit),
        _split(training["train"], settings.classifier.max_examples),
    )


def _split(rows: Any, limit: int | None) -> Split:
    rows = rows.select(range(min(limit, len(rows)))) if limit else rows
    questions = [next(m["content"] for m in r if m["role"] == "user") for r in rows["messages"]]
    return Split(questions, [r[-1]["content"] for r in rows["messages"]])


def _contestants(
    settings: DictConfig,
    run_dir: Path,
    run_cfg: DictConfig,
    persona: dict[str, Any],
    base: tuple[Any, Any],
    cache: ResponseCache,
) -> list[Any]:
    prompt = persona_instructions(persona)
    finetuned: tuple[Any, Any] | None = None
    contestants = []
    for name, spec in settings.contestants.items():
        if not spec:
            continue
        if name == REFERENCE:
            raise ConfigError(
                f"evaluation.contestants.{REFERENCE}: the name is taken by the dataset's reference answers"
            )
        with_prompt = spec.system_prompt if spec.system_prompt is not None else run_cfg.prepend_system_prompt
        system = prompt if with_prompt else None
        if spec.source == "base":
            contestants.append(LocalContestant(name, *base, system))
        elif spec.source == "run":
            if finetuned is None:
                model, tokenizer, _ = load_trained(run_dir)
                finetuned = (model, tokenizer)
            contestants.append(LocalContestant(name, *finetuned, system))
        elif spec.source == "endpoint":
            contestants.append(
                EndpointContestant(name, hydra.utils.instantiate(spec.endpoint, cache=cache), system)
            )
        else:
            raise DataError(
                f"evaluation.contestants.{name}.source={spec.source!r} is not base, run or endpoint"
            )
    return contestants


def _neutral_answers(
    run_cfg: DictConfig,
    base: tuple[Any, Any],
    questions: list[str],
    sampling: Sampling,
    batch_size: int,
    cache: ResponseCache,
) -> list[str]:
    """The base model's own, unprompted answers to the train questions (cached: they never change)."""
    teacher = LocalTeacher(run_cfg.base_model, batch_size=batch_size, cache=cache, loaded=base)
    requests = [
        ChatRequest.of([{"role": "user", "content": q}], temperature=0.0, max_tokens=sampling.max_new_tokens)
        for q in questions
    ]
    return [
        r.text.strip() for r in teacher.complete(requests, desc="Neutral answers for the tone classifier")
    ]


def _judge(
    settings: DictConfig,
    persona: dict[str, Any],
    questions: list[str],
    answers: dict[str, Answers],
    metrics: dict[str, dict[str, float]],
    cache: ResponseCache,
) -> dict[str, Any] | None:
    if not settings.get("judge"):
        return None
    judge = hydra.utils.instantiate(settings.judge, cache=cache)
    candidate = settings.judge_candidate
    pairwise = {
        opponent: judge_pairwise(
            judge,
            persona,
            questions,
            answers[candidate].texts,
            theirs.texts,
            desc=f"Judge: {candidate} vs {opponent}",
        ).summary()
        for opponent, theirs in answers.items()
        if opponent != candidate
    }
    for opponent, summary in pairwise.items():
        metrics[candidate][f"judge/win_rate_vs_{opponent}"] = summary["win_rate"]
    for name, theirs in answers.items():
        fidelity = judge_fidelity(judge, persona, questions, theirs.texts, desc=f"Judge: fidelity of {name}")
        metrics[name]["judge/fidelity"] = fidelity["fidelity"]
    return {"model": judge.model, "candidate": candidate, "pairwise": pairwise}


def _context(
    run_dir: Path,
    run_cfg: DictConfig,
    settings: DictConfig,
    sampling: Sampling,
    classifier: ToneClassifier,
    n_questions: int,
) -> dict[str, Any]:
    adapter = as_dict(run_cfg.adapter)
    adapter_text = adapter["name"] + (
        f" (r={adapter['r']}, alpha={adapter['alpha']})" if adapter["kind"] == "lora" else ""
    )
    return {
        "run_dir": str(run_dir),
        "run_name": run_dir.name,
        "persona": run_cfg.persona.display_name,
        "base_model": run_cfg.base_model.name,
        "adapter": adapter_text,
        "data": settings.questions.source or run_cfg.data.source,
        "split": settings.questions.split,
        "questions": n_questions,
        "trained_with_prompt": bool(run_cfg.prepend_system_prompt),
        "sampling": asdict(sampling),
        "classifier_accuracy": classifier.held_out_accuracy,
        "classifier_held_out": classifier.held_out_size,
    }


def _write_outputs(
    out_dir: Path,
    result: dict[str, Any],
    test: Split,
    answers: dict[str, Answers],
    texts: dict[str, list[str]],
    settings: DictConfig,
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(result, out_dir / "metrics.json")
    with (out_dir / "answers.jsonl").open("w", encoding="utf-8") as handle:
        for i, question in enumerate(test.questions):
            row = {"question": question, REFERENCE: test.references[i]}
            for name, a in answers.items():
                row[name] = a.texts[i]
                row[f"{name}_finish_reason"] = a.finish_reasons[i]
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    plots = [
        metric_bars(result["metrics"], PLOTTED, out_dir / "plots" / "metrics.png"),
        length_histogram(texts, out_dir / "plots" / "answer_lengths.png"),
    ]
    report = render_report(
        result["context"],
        result["metrics"],
        test.questions,
        texts,
        settings.samples_in_report,
        result["judge"],
    )
    (out_dir / "report.md").write_text(report, encoding="utf-8")
    return plots


def _log(
    loggers: list[Any],
    metrics: dict[str, dict[str, float]],
    questions: list[str],
    texts: dict[str, list[str]],
    plots: list[Path],
) -> None:
    for logger in loggers:
        logger.log_metrics({f"eval/{c}/{m}": v for c, scores in metrics.items() for m, v in scores.items()})
        if hasattr(logger, "log_table"):
            columns = ["question", *texts]
            logger.log_table(
                "eval/samples",
                columns=columns,
                data=[[q, *(texts[c][i] for c in texts)] for i, q in enumerate(questions)],
            )
        if hasattr(logger, "log_image"):
            logger.log_image("eval/plots", [str(p) for p in plots])
