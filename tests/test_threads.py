"""Torch threads shared between tonetune processes on one machine: real processes sign in and out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tonetune.hardware import REGISTRY_ENV, THREADS_ENV, usable_cores

# A process that answers "check" with its thread share (as the engine and training read it).
CHILD = """
import sys
from tonetune.hardware import share_threads
for line in sys.stdin:
    if line.strip() == "quit":
        break
    print(share_threads(force=True), flush=True)
"""


class Child:
    """A real Python process holding a thread share."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def check(self) -> int:
        self.process.stdin.write("check\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def quit(self) -> None:
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        assert self.process.wait(timeout=60) == 0


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    values = {
        k: v for k, v in os.environ.items() if k not in {THREADS_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS"}
    }
    return {**values, REGISTRY_ENV: str(tmp_path / "registry"), "PYTHONPATH": str(Path.cwd())}


def a_dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_processes_share_the_cores_as_they_come_and_go(env, tmp_path) -> None:
    cores = usable_cores()
    if cores < 2:
        pytest.skip("one core: nothing to share")
    half = cores // 2
    first = Child(env)
    second = None
    try:
        assert first.check() == cores
        second = Child(env)
        assert second.check() == half
        assert first.check() == half  # the earlier process gives up its extra threads
        stale = tmp_path / "registry" / str(a_dead_pid())
        stale.touch()  # a process that was killed without signing out
        assert first.check() == half and not stale.exists()
        second.quit()
        second = None
        assert first.check() == cores  # and takes them back when the other has gone
    finally:
        for child in (first, second):
            if child is not None:
                child.process.kill()


def test_a_fixed_count_is_kept_and_not_counted(env, tmp_path) -> None:
    fixed = Child({**env, THREADS_ENV: "1"})
    try:
        assert fixed.check() == 1
        assert not any((tmp_path / "registry").glob("*"))
        shared = Child(env)
        assert shared.check() == usable_cores()  # the fixed process does not take a share
        shared.quit()
    finally:
        fixed.process.kill()
