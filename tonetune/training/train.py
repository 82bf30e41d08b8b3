"""``train(cfg)``: fine-tune a base model in a persona's tone; returns (metrics, objects)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar

from tonetune.config import Instantiable, command_config, plain_config
from tonetune.generation.sampling import Sampling
from tonetune.hardware import precision_reason
from tonetune.models.base_models import load_tokenizer
from tonetune.models.runs import METRICS_FILE
from tonetune.persona import persona_instructions
from tonetune.runtime import instantiate_named, write_json
from tonetune.schemas.train import TrainConfig
from tonetune.training.artifacts import best_checkpoint_path, save_run, select_weights
from tonetune.training.callbacks import LastCheckpoint, SaveOnInterrupt, StopOnNonFinite
from tonetune.training.checks import check_options, check_resumable, read_checkpoint
from tonetune.training.data import build_datamodule
from tonetune.training.initialize import resolve_init_from, trainable_model
from tonetune.training.module import ToneTuneModule
from tonetune.training.objectives import build_objective
from tonetune.training.reference import compute_reference

log = logging.getLogger(__name__)


def train(cfg: TrainConfig | Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build data, model, callbacks, loggers and trainer from the config; fit; save the run folder.

    ``cfg`` is typed at the door (a composed config becomes a ``TrainConfig``; every value checked
    before anything loads). ``tonetune.workflows.run_training`` is the whole task (evaluation after
    training, W&B closed).
    """
    config = command_config(TrainConfig, cfg)
    check_options(config)
    objective = build_objective(config.objective)
    sampling = Sampling.from_config(config.evaluation.sampling, "evaluation.sampling")
    config = resolve_init_from(config)
    checkpoint = read_checkpoint(config.ckpt_path) if config.ckpt_path else None
    L.seed_everything(config.seed, workers=True)
    run_dir = Path(config.paths.output_dir)
    tokenizer = load_tokenizer(config.base_model)
    system_prompt = persona_instructions(config.persona) if config.prepend_system_prompt else None
    datamodule = build_datamodule(config.data, objective, tokenizer=tokenizer, system_prompt=system_prompt)
    datamodule.setup("fit")
    trainer = _trainer(config, run_dir, lambda m: save_run(run_dir, m.model, tokenizer, config, sampling))
    module = ToneTuneModule(
        model=trainable_model(config),
        objective=objective,
        optimizer=hydra.utils.instantiate(config.optimizer),
        scheduler=hydra.utils.instantiate(config.scheduler) if config.scheduler else None,
        total_steps=optimizer_steps(trainer, len(datamodule.train_dataloader())),
        hparams={key: plain_config(getattr(config, key)) for key in ("base_model", "adapter", "objective")},
        warmup_ratio=config.module.warmup_ratio,
        compile=config.module.compile,
    )
    if checkpoint is not None:
        check_resumable(checkpoint, module, config.ckpt_path)
        del checkpoint
    baseline = _prepare_reference(module, datamodule, run_dir)
    if config.validate_before_training:
        scores = trainer.validate(module, datamodule=datamodule, verbose=False, weights_only=True)[0]
        baseline.update({f"{name}_before": value for name, value in scores.items()})
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=config.ckpt_path, weights_only=True)
    metrics = {**baseline, **_final_metrics(trainer, module, time.perf_counter() - started)}
    metrics["model_weights"] = select_weights(trainer, module, config.checkpoint.select.value)
    if trainer.is_global_zero:
        model_dir = save_run(run_dir, module.model, tokenizer, config, sampling)
        write_json(metrics, run_dir / METRICS_FILE)
        log.info("Model saved to %s; metrics in %s", model_dir, run_dir / METRICS_FILE)
    objects = {"trainer": trainer, "module": module, "datamodule": datamodule, "run_dir": run_dir}
    return metrics, {**objects, "tokenizer": tokenizer, "config": config}


def _trainer(config: TrainConfig, run_dir: Path, save: Any) -> L.Trainer:
    """The Lightning Trainer with the configured callbacks and loggers, saving the run on Ctrl-C."""
    loggers = instantiate_named(config.logger)
    callbacks = _compatible(instantiate_named(config.callbacks), loggers, config.trainer)
    last = next(
        (c.path for c in callbacks if isinstance(c, LastCheckpoint)), run_dir / "checkpoints" / "last.ckpt"
    )
    callbacks += [SaveOnInterrupt(save, last), StopOnNonFinite()]
    trainer: L.Trainer = hydra.utils.instantiate(config.trainer, callbacks=callbacks, logger=loggers)
    precision, accelerator = str(config.trainer["precision"]), str(config.trainer["accelerator"])
    log.info("Training in %s", precision_reason(precision, accelerator))
    for logger in trainer.loggers:
        logger.log_hyperparams(plain_config(config))
    return trainer


def optimizer_steps(trainer: L.Trainer, batches_per_epoch: int) -> int:
    """The optimizer steps ``fit`` will take, for the LR schedule.

    Lightning's ``estimated_stepping_batches`` would set up the train loader before a checkpoint's
    loop state is restored, and a resumed run then loses its position inside the epoch (Lightning
    issue #20550); this counts from the data and the trainer's settings instead.
    """
    per_process = math.ceil(batches_per_epoch / max(trainer.world_size, 1))
    limit = trainer.limit_train_batches
    per_process = min(per_process, limit) if isinstance(limit, int) else int(per_process * (limit or 1.0))
    per_epoch = max(1, math.ceil(per_process / trainer.accumulate_grad_batches))
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
    total = per_epoch * epochs
    return min(total, trainer.max_steps) if trainer.max_steps and trainer.max_steps > 0 else total


def _compatible(callbacks: list[Any], loggers: list[Any], trainer_cfg: Instantiable) -> list[Any]:
    """Drop callbacks that Lightning refuses with these trainer settings, instead of failing."""
    if not loggers:  # a learning-rate monitor needs somewhere to log
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if not trainer_cfg.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return callbacks


def _prepare_reference(module: ToneTuneModule, datamodule: Any, run_dir: Path) -> dict[str, float]:
    """DPO's reference log-probabilities, computed once before training; the seconds it took."""
    if not module.objective.needs_reference:
        return {}
    started = time.perf_counter()
    compute_reference(module.model, datamodule, run_dir)
    return {"train/reference_seconds": time.perf_counter() - started}


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
    if best := best_checkpoint_path(trainer):
        metrics["best_checkpoint"] = best
    return metrics
