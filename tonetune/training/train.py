"""``train(cfg)``: fine-tune a base model in a persona's tone; returns (metrics, objects)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from omegaconf import DictConfig

from tonetune.models import load_tokenizer
from tonetune.persona import persona_instructions
from tonetune.runtime import instantiate_named, resolved_job_config, task_wrapper, write_json
from tonetune.training.artifacts import METRICS_FILE, save_run
from tonetune.training.module import ToneTuneModule

log = logging.getLogger(__name__)


@task_wrapper
def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build data, model, callbacks, loggers and trainer from ``cfg``; fit; save the run folder."""
    L.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.paths.output_dir)
    tokenizer = load_tokenizer(cfg.base_model)
    system_prompt = persona_instructions(cfg.persona) if cfg.prepend_system_prompt else None
    datamodule = hydra.utils.instantiate(cfg.data, tokenizer=tokenizer, system_prompt=system_prompt)
    datamodule.setup("fit")
    module = ToneTuneModule(
        base_model=cfg.base_model,
        adapter=cfg.adapter,
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        **cfg.module,
    )
    loggers = instantiate_named(cfg.get("logger"))
    callbacks = _compatible(instantiate_named(cfg.get("callbacks")), loggers, cfg.trainer)
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in trainer.loggers:
        logger.log_hyperparams(resolved_job_config(cfg))

    baseline = {}
    if cfg.get("validate_before_training"):
        scores = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
        baseline = {f"{name}_before": value for name, value in scores.items()}
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    seconds = time.perf_counter() - started

    metrics = {**baseline, **_final_metrics(trainer, module, seconds)}
    if trainer.is_global_zero:
        model_dir = save_run(run_dir, module.model, tokenizer, cfg)
        if cfg.get("evaluate_after_training"):
            metrics.update(_evaluate(run_dir, cfg, loggers))
        write_json(metrics, run_dir / METRICS_FILE)
        log.info("Model saved to %s; metrics in %s", model_dir, run_dir / METRICS_FILE)
    return metrics, {"trainer": trainer, "module": module, "datamodule": datamodule, "run_dir": run_dir}


def _evaluate(run_dir: Path, cfg: DictConfig, loggers: list[Any]) -> dict[str, float]:
    """Evaluate the saved run (report in <run>/evaluation); metrics as eval/<contestant>/<metric>."""
    from tonetune.evaluation.evaluate import EVALUATION_DIR, evaluate_run

    result, _ = evaluate_run(
        run_dir, cfg.evaluation, run_dir / EVALUATION_DIR, loggers, Path(cfg.paths.response_cache)
    )
    return {
        f"eval/{name}/{metric}": value
        for name, scores in result["metrics"].items()
        for metric, value in scores.items()
    }


def _compatible(callbacks: list[Any], loggers: list[Any], trainer_cfg: DictConfig) -> list[Any]:
    """Drop callbacks that Lightning refuses with these trainer settings, instead of failing."""
    if not loggers:  # a learning-rate monitor needs somewhere to log
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if not trainer_cfg.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return callbacks


def _final_metrics(trainer: L.Trainer, module: ToneTuneModule, seconds: float) -> dict[str, Any]:
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics.update(module.parameter_counts())
    metrics.update(
        {
            "train/global_step": trainer.global_step,
            "train/epochs": trainer.current_epoch,
            "train/tokens": module.tokens_trained,
            "train/seconds": seconds,
            "train/tokens_per_s": module.tokens_trained / seconds if seconds > 0 else 0.0,
        }
    )
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_path:
        metrics["best_checkpoint"] = checkpoint.best_model_path
    return metrics
