"""Callbacks Lightning does not ship: last checkpoint, saving on Ctrl-C, stop on divergence, counts, speed."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint, ThroughputMonitor

from tonetune.errors import DivergedError
from tonetune.models.base_models import first_non_finite

log = logging.getLogger(__name__)


def token_throughput_monitor(window_size: int = 5) -> ThroughputMonitor:
    """Lightning's ThroughputMonitor counting real (non-padding) tokens as ``train|device/items_per_sec``."""
    return ThroughputMonitor(
        batch_size_fn=lambda batch: batch["input_ids"].shape[0],
        length_fn=lambda batch: int(batch["attention_mask"].sum()),
        window_size=window_size,
    )


class ParameterCount(L.Callback):
    """Logs trainable and total parameter counts once training starts."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Send the counts to every logger."""
        counts = pl_module.parameter_counts()
        counts["params/trainable_pct"] = 100.0 * counts["params/trainable"] / max(counts["params/total"], 1)
        for logger in trainer.loggers:
            logger.log_metrics(counts, step=0)


class LastCheckpoint(Checkpoint):
    """``last.ckpt`` every ``every_n_train_steps`` optimizer steps, at every epoch's end, and on Ctrl-C.

    What ``ckpt_path=`` resumes from after a crash: weights, optimizer, scheduler and the position
    inside the epoch. Written to a temporary file and renamed, so a kill mid-write leaves the
    previous one whole. The first Ctrl-C lets the current step finish, saves, then stops the run
    (a second one stops at once).
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 10, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename
        self.every_n_train_steps = every_n_train_steps
        self._saved_step = -1
        self._stop_requested = False
        self._previous_handler: Any = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Take over the first Ctrl-C (in the main thread only, where signals arrive)."""
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._request_stop)

    def _request_stop(self, signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, self._previous_handler or signal.default_int_handler)
        self._stop_requested = True
        print("\nCtrl-C: saving after this step (press it again to stop at once)", flush=True)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        """Save every N steps; after a Ctrl-C, save and stop."""
        step = trainer.global_step
        if self._stop_requested or (self.every_n_train_steps and step % self.every_n_train_steps == 0):
            self.save(trainer)
        if self._stop_requested:
            raise KeyboardInterrupt

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Save at the end of every epoch (after its validation)."""
        self.save(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        """Give Ctrl-C back."""
        if self._previous_handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def save(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` once per optimizer step at most, never with non-finite weights."""
        if trainer.sanity_checking or trainer.global_step == self._saved_step or trainer.fast_dev_run:
            return
        check_finite_weights(trainer, trainer.lightning_module)
        self._saved_step = trainer.global_step
        staging = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(staging, weights_only=False)
        if trainer.is_global_zero:
            os.replace(staging, self.path)


class SaveOnInterrupt(L.Callback):
    """On Ctrl-C, save ``model/`` with the current weights and the config, and say how to resume.

    Args:
        save_run: Writes ``model/`` and ``config.yaml`` from the module (the train task's own saver).
        checkpoint: Where ``LastCheckpoint`` keeps the resumable checkpoint.
    """

    def __init__(self, save_run: Callable[[Any], Path], checkpoint: Path) -> None:
        self.save_run = save_run
        self.checkpoint = checkpoint

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        """Only for KeyboardInterrupt; other failures keep the last good checkpoint as it is."""
        if not isinstance(exception, KeyboardInterrupt) or not trainer.is_global_zero:
            return
        model_dir = self.save_run(pl_module)
        resume = (
            f"resume with ckpt_path={self.checkpoint}"
            if self.checkpoint.is_file()
            else "no checkpoint to resume from"
        )
        message = (
            f"Interrupted at step {trainer.global_step}: saved the current weights to {model_dir}; {resume}"
        )
        log.warning(message)
        print(message, flush=True)


class StopOnNonFinite(L.Callback):
    """Stop at the first non-finite training loss (or weight after validation), in one line.

    The line names the step and the likely cause; ``last.ckpt`` keeps the last finite weights
    (``LastCheckpoint`` never writes others) and ``model/`` is not written, so a sweep sees a failure.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, *args: Any) -> None:
        """Check the step's loss."""
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            raise diverged(trainer, f"the training loss is {float(loss.detach().float().mean())}")

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Check the weights before a checkpoint keeps them as the best (checkpoint callbacks run last)."""
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            check_finite_weights(trainer, pl_module)


def check_finite_weights(trainer: L.Trainer, module: Any) -> None:
    """Raise DivergedError when a trainable weight holds a NaN or an infinity."""
    name = first_non_finite((n, p.detach()) for n, p in module.named_parameters() if p.requires_grad)
    if name is not None:
        raise diverged(trainer, f"{name} is no longer finite")


def diverged(trainer: L.Trainer, what: str) -> DivergedError:
    """The one line for a run that diverged: where, the likely cause, and what was kept."""
    lr = trainer.optimizers[0].defaults.get("lr") if trainer.optimizers else None
    keeper = next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
    if keeper is not None and keeper.path.is_file():
        at = f" (step {keeper._saved_step})" if keeper._saved_step >= 0 else ""
        kept = f"the last finite checkpoint is kept: {keeper.path}{at}"
    else:
        kept = "no checkpoint was written before it"
    return DivergedError(
        f"training diverged at step {trainer.global_step}: {what}; likely cause: optimizer.lr={lr} is too "
        f"high (try it 10 times lower); {kept}; model/ was not written"
    )
