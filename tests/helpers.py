"""Test-only fault injection (loaded by subprocesses through PYTHONPATH, or used in-process)."""

from __future__ import annotations

import os
import signal
import socket

import lightning as L

from tonetune.generation.engine import Engine


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


class InterruptAtStep(L.Callback):
    """Send this process SIGINT (Ctrl-C) when optimizer step ``step`` is about to start."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        """Press Ctrl-C once."""
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


class FailingEngine(Engine):
    """A real engine whose decoding fails after ``fail_after`` steps (a device fault mid-answer)."""

    fail_after = 3

    def stream(self, requests):
        for step, deltas in enumerate(super().stream(requests)):
            if step == self.fail_after:
                raise RuntimeError("injected device fault")
            yield deltas


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
