"""What each command does: every ``tonetune-*`` CLI calls exactly one function here.

The CLI composes and prints; the work, from the typed config down, starts here. Stages are imported
inside each function, so a command loads only what it runs. ``run_training`` spans two stages:
training, then the evaluation of the model still in memory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tonetune.config import command_config
from tonetune.models.runs import METRICS_FILE, read_run
from tonetune.runtime import task_wrapper, write_json
from tonetune.schemas.commands import ChatConfig, ExportConfig, ServeConfig, ServerSettings
from tonetune.schemas.train import TrainConfig

log = logging.getLogger(__name__)


@task_wrapper
def run_training(cfg: TrainConfig | Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``tonetune-train``: fit and save, then (``evaluate_after_training``) evaluate.

    The evaluation uses the trained model as it is in memory (no second load); its report goes to
    ``<run>/evaluation`` and its metrics into metrics.json as ``eval/<contestant>/<metric>``.
    """
    from tonetune.training.train import train

    config = command_config(TrainConfig, cfg)
    metrics, objects = train(config)
    trainer = objects["trainer"]
    if config.evaluate_after_training and trainer.is_global_zero:
        metrics.update(evaluate_trained(objects["config"], objects))
        write_json(metrics, Path(objects["run_dir"]) / METRICS_FILE)
    return metrics, objects


def evaluate_trained(config: TrainConfig, objects: dict[str, Any]) -> dict[str, float]:
    """Evaluate the module's model (adapter runs: base and fine-tuned from this one copy).

    The run is saved first; the module's model is then cast to ``evaluation.dtype`` in place.
    """
    from tonetune.evaluation.evaluate import EVALUATION_DIR, evaluate_run
    from tonetune.evaluation.lineup import models_from
    from tonetune.evaluation.settings import EvaluationSettings

    run = read_run(objects["run_dir"])
    settings = EvaluationSettings.from_cfg(config.evaluation)
    models = models_from(run, objects["module"].model, objects["tokenizer"], settings.dtype)
    result, _ = evaluate_run(
        run,
        settings,
        models,
        run.dir / EVALUATION_DIR,
        list(objects["trainer"].loggers),
        Path(config.paths.response_cache),
    )
    return {
        f"eval/{name}/{metric}": value
        for name, scores in result["metrics"].items()
        for metric, value in scores.items()
        if value is not None
    }


def run_synthesis(cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``tonetune-synthesize``: the teacher writes the persona dataset."""
    from tonetune.synthesis.synthesize import synthesize

    return synthesize(cfg)


def run_evaluation(cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``tonetune-evaluate``: contestants answer, readers score, the report is written."""
    from tonetune.evaluation.evaluate import evaluate

    return evaluate(cfg)


def headline(result: Any) -> str:
    """The evaluation's headline lines, as the CLI prints them."""
    from tonetune.evaluation.report import headline as render

    return render(result)


def build_arena(cfg: Any) -> tuple[Any, Any]:
    """``tonetune-arena``: the arena and its page."""
    from tonetune.arena.launch import build_arena as build

    return build(cfg)


def load_served(config: ServeConfig | ChatConfig) -> Any:
    """``tonetune-serve`` and ``tonetune-chat``: runs, a model folder, or the base model, loaded."""
    from tonetune.serving.served import load_served as load

    run_dirs = [config.run_dir] if isinstance(config.run_dir, str) else list(config.run_dir or [])
    base = None if run_dirs or config.model_dir else config.base_model
    name = getattr(config, "model_name", None)
    return load(
        run_dirs, config.model_dir, base, config.merge_adapter, config.system_prompt, name, config.dtype
    )


def serve(served: Any, server: ServerSettings, host: str, port: int) -> None:
    """``tonetune-serve``: the OpenAI-compatible server until a signal stops it."""
    from tonetune.serving.server import serve as run

    run(served, server, host, port)


def chat(served: Any, overrides: dict[str, Any]) -> None:
    """``tonetune-chat``: a terminal conversation with the (first) served model."""
    from dataclasses import replace

    from tonetune.serving.chat import chat_loop

    model = next(iter(served.models.values()))
    chat_loop(served, replace(model, sampling=model.sampling.overridden(**overrides)))


def run_export(cfg: ExportConfig | Any) -> tuple[dict[str, Any], Any]:
    """``tonetune-export``: merged Hugging Face folder and GGUF (and llama.cpp's check with verify)."""
    from tonetune.serving.export import export_run
    from tonetune.serving.gguf_verify import require_llama_cpp, verify_gguf

    config = command_config(ExportConfig, cfg)
    if config.verify:
        require_llama_cpp()
    run_dir, out_dir = Path(config.run_dir), Path(config.out_dir)
    result = export_run(
        run_dir, out_dir, config.check_prompts, config.check_tokens, config.gguf, config.overwrite
    )
    if not config.verify:
        return result, None
    hf, gguf = Path(result["hf_dir"]), Path(result["gguf"])
    return result, verify_gguf(hf, gguf, config.verify_prompts, config.check_tokens)


def sweep_report(sweep_dir: Path, metric: str | None) -> dict[str, Any]:
    """``tonetune-sweep-report``: ranked table, CSV and plot of a multirun."""
    from tonetune.sweep_report import write_report

    return write_report(sweep_dir, metric)
