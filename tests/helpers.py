"""Test-only fault injection (loaded by subprocesses through PYTHONPATH, or used in-process)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

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


class KillAtValidation(L.Callback):
    """SIGKILL this process when the first validation inside training starts (after an epoch's last batch)."""

    def on_validation_start(self, trainer: L.Trainer, *args: object) -> None:
        """Kill when training's own validation begins (the sanity check is off in tests)."""
        if trainer.state.fn == "fit":
            os.kill(os.getpid(), signal.SIGKILL)


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


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: int = 600, **kwargs
) -> subprocess.CompletedProcess:
    """Run a console command as a user would; stdout and stderr captured as text."""
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The lines of stderr that report an error."""
    return [line for line in result.stderr.splitlines() if "error" in line.lower()]
