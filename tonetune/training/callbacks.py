"""Callbacks Lightning does not ship: the last checkpoint, saving on Ctrl-C, parameter counts, throughput."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint, ThroughputMonitor

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
        """Write ``last.ckpt`` once per optimizer step at most."""
        if trainer.sanity_checking or trainer.global_step == self._saved_step or trainer.fast_dev_run:
            return
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
