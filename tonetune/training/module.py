"""The LightningModule: a (optionally 4-bit) causal LM with its adapter, trained on assistant tokens."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from peft import PeftModel
from torch import nn

from tonetune.adapters import build_trainable_model, parameter_counts
from tonetune.data.chat import IGNORE_INDEX
from tonetune.models import as_dict

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def _causal_lm(model: nn.Module) -> nn.Module:
    return model.get_base_model() if isinstance(model, PeftModel) else model


def masked_lm_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over labelled positions, and how many there were.

    The LM head runs only on positions with a label: for chat data most positions are the
    prompt, and the head's vocab-sized matmul is a large share of a small model's compute.
    """
    causal_lm = _causal_lm(model)
    hidden = causal_lm.get_decoder()(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][keep])
    loss = F.cross_entropy(logits.float(), targets[keep])
    return loss, int(keep.sum())


class ToneTuneModule(L.LightningModule):
    """Fine-tunes a base causal LM in a persona's tone.

    Args:
        base_model: The ``base_model`` config (which model, dtype, target modules).
        adapter: The ``adapter`` config (LoRA/DoRA/QLoRA, freeze, full).
        optimizer: Partial optimizer (``_partial_: true``); receives the trainable parameters.
        scheduler: Partial LR scheduler taking ``num_warmup_steps`` and ``num_training_steps``, or None.
        warmup_ratio: Share of the optimizer steps spent warming up.
        compile: ``torch.compile`` the model's forward.
    """

    def __init__(
        self,
        base_model: Any,
        adapter: Any,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        warmup_ratio: float = 0.0,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {"base_model": as_dict(base_model), "adapter": as_dict(adapter), "warmup_ratio": warmup_ratio}
        )
        self.model = build_trainable_model(base_model, adapter)
        # from_pretrained returns a model in eval mode, and Lightning keeps submodule modes as found.
        self.model.train()
        if compile:
            _causal_lm(self.model).get_decoder().compile(dynamic=True)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.warmup_ratio = warmup_ratio
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
        """One step on assistant tokens; logs the loss."""
        loss, _ = masked_lm_loss(self.model, batch)
        self._batch_tokens = int(batch["attention_mask"].sum())
        self.tokens_trained += self._batch_tokens
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Validation loss weighted by labelled tokens (and its perplexity)."""
        loss, n_tokens = masked_lm_loss(self.model, batch)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=n_tokens)

    def on_validation_epoch_end(self) -> None:
        """Perplexity from the epoch's mean validation loss."""
        val_loss = self.trainer.callback_metrics.get("val/loss")
        if val_loss is not None:
            self.log("val/ppl", math.exp(min(float(val_loss), 50.0)), sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        """The optimizer over trainable parameters, with a per-step scheduler when one is configured."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        total = int(self.trainer.estimated_stepping_batches)
        # Estimating the steps sets up the train loader before a checkpoint's loop state is restored,
        # and Lightning then skips restoring the loader's mid-epoch position (Lightning issue #20550).
        # Dropping the early loader makes the fit loop build it again, after the restore.
        self.trainer.fit_loop._combined_loader = None
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
        """Restore the token count of a resumed run."""
        self.tokens_trained = checkpoint.get("tokens_trained", 0)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable and total parameters of the wrapped model."""
        trainable, total = parameter_counts(self.model)
        return {"params/trainable": trainable, "params/total": total}
