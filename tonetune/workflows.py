"""Tasks made of several stages: training, then the evaluation of the model still in memory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tonetune.config import command_config
from tonetune.models.runs import METRICS_FILE, read_run
from tonetune.runtime import task_wrapper, write_json
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
    """Evaluate the module's model (adapter runs: base and fine-tuned from this one copy)."""
    from tonetune.evaluation.evaluate import EVALUATION_DIR, evaluate_run
    from tonetune.evaluation.lineup import models_from
    from tonetune.evaluation.settings import EvaluationSettings

    run = read_run(objects["run_dir"])
    models = models_from(run, objects["module"].model, objects["tokenizer"])
    result, _ = evaluate_run(
        run,
        EvaluationSettings.from_cfg(config.evaluation),
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
