"""Test-only callbacks for fault injection (loaded by subprocesses through PYTHONPATH)."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILL this process when optimizer step ``step`` is about to start (like a power cut).

    Lightning runs checkpoint callbacks after all others, so the checkpoint of step ``step``
    has been written when the next batch starts.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        """Kill once the wanted number of steps is done."""
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
