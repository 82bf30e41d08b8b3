"""The LightningModule: a (optionally 4-bit) causal LM with its adapter, trained by one objective."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn

from tonetune.hardware import share_threads
from tonetune.models.adapters import parameter_counts
from tonetune.models.loss import causal_lm
from tonetune.training.objectives import Objective

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class ToneTuneModule(L.LightningModule):
    """Fine-tunes a causal LM in a persona's tone.

    Args:
        model: The trainable model (adapters attached, or blocks unfrozen; see ``models.adapters``).
        objective: What the loss asks (a component of ``training.objectives``).
        optimizer: Partial optimizer (``_partial_: true``); receives the trainable parameters.
        scheduler: Partial LR scheduler taking ``num_warmup_steps`` and ``num_training_steps``, or None.
        warmup_ratio: Share of the optimizer steps spent warming up.
        total_steps: Optimizer steps of the whole run (the scheduler's length; see ``optimizer_steps``).
        compile: ``torch.compile`` the model's decoder.
        hparams: Plain settings recorded in checkpoints and loggers (base model, adapter, objective).
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        warmup_ratio: float = 0.0,
        total_steps: int = 1,
        compile: bool = False,
        hparams: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters({**(hparams or {}), "warmup_ratio": warmup_ratio})
        self.model = model
        # from_pretrained returns a model in eval mode, and Lightning keeps submodule modes as found.
        self.model.train()
        if compile:
            causal_lm(self.model).get_decoder().compile(dynamic=True)
        self.objective = objective
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.warmup_ratio = warmup_ratio
        self.total_steps = total_steps
        # Checkpoints hold only trainable weights; the frozen base is reloaded from its source.
        self.strict_loading = False
        self.tokens_trained = 0
        self._batch_tokens = 0
        trainable, total = parameter_counts(self.model)
        # Forward 2N, backward through activations 2N, weight gradients 2 x trainable (per token).
        self._flops_per_token = 4 * total + 2 * trainable

    @property
    def flops_per_batch(self) -> int:
        """Approximate training FLOPs of the last batch (read by Lightning's ThroughputMonitor)."""
        return self._flops_per_token * self._batch_tokens

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One step of the objective; logs its loss and what it reports."""
        share_threads()  # this process's share of the cores (tonetune.hardware)
        result = self.objective.step(self.model, batch)
        self._batch_tokens = int(batch["attention_mask"].sum())
        self.tokens_trained += self._batch_tokens
        self.log("train/loss", result.loss, prog_bar=True, batch_size=result.batch_size)
        for name, value in result.logs.items():
            self.log(f"train/{name}", value, batch_size=result.batch_size)
        return result.loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Validation loss (weighted by what the objective counts) and the objective's reports."""
        result = self.objective.step(self.model, batch)
        self.log("val/loss", result.loss, prog_bar=True, sync_dist=True, batch_size=result.batch_size)
        for name, value in result.logs.items():
            self.log(f"val/{name}", value, sync_dist=True, batch_size=result.batch_size)

    def on_validation_epoch_end(self) -> None:
        """Perplexity from the epoch's mean validation loss, when that loss is a token NLL."""
        val_loss = self.trainer.callback_metrics.get("val/loss")
        if val_loss is not None and self.objective.token_nll:
            self.log("val/ppl", math.exp(min(float(val_loss), 50.0)), sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        """The optimizer over trainable parameters, with a per-step scheduler when one is configured."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        total = self.total_steps
        scheduler = self.scheduler_factory(
            optimizer=optimizer, num_warmup_steps=int(self.warmup_ratio * total), num_training_steps=total
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only trainable weights (adapters, or the unfrozen blocks) and the token count."""
        trainable = {f"model.{name}" for name, p in self.model.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}
        checkpoint["tokens_trained"] = self.tokens_trained

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the token count of a resumed run; close an epoch the checkpoint left on its last batch."""
        self.tokens_trained = checkpoint.get("tokens_trained", 0)
        finish_epoch_saved_on_its_last_batch(checkpoint)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable and total parameters of the wrapped model."""
        trainable, total = parameter_counts(self.model)
        return {"params/trainable": trainable, "params/total": total}


def finish_epoch_saved_on_its_last_batch(checkpoint: dict[str, Any]) -> None:
    """Mark an epoch whose last batch was trained, but which had not ended, as ended.

    A checkpoint saved after an epoch's last batch and before its validation (every N steps can land
    there) makes Lightning 2.6 restore the exhausted loader into the next epoch, which then ends at
    once: a resumed run silently skips an epoch. As ended, the run resumes at the next epoch (the
    skipped epoch's validation is the only thing lost).
    """
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    batches, epochs = loop.get("epoch_loop.batch_progress"), loop.get("epoch_progress")
    if not batches or not epochs or not batches.get("is_last_batch"):
        return
    for progress in (epochs["total"], epochs["current"]):
        progress["processed"] = max(progress["processed"], progress["started"])
    for progress in (batches["total"], batches["current"]):
        progress["completed"] = progress["processed"]
