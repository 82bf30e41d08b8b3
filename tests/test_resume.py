"""A run killed mid-epoch and resumed from its checkpoint continues exactly where it stopped."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST_TRAIN
from tonetune.config import REPO_ROOT
from tonetune.training.train import train

# 43 training examples, batch 8: 6 steps per epoch; the crash comes at step 3, mid-epoch 0.
RECIPE = [
    "adapter.dropout=0.0",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "logger=csv",
    "callbacks.last_checkpoint.every_n_train_steps=1",
    "~callbacks.early_stopping",
]
CRASH_STEP = 3


def step_losses(run_dir: Path) -> dict[int, float]:
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(handle) if r.get("train/loss")}


def test_killed_run_resumes_mid_epoch_with_the_same_batches(make_train_cfg, tmp_path: Path) -> None:
    crashed = tmp_path / "crashed"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tonetune.cli.train",
            *FAST_TRAIN,
            *RECIPE,
            f"hydra.run.dir={crashed}",
            "+callbacks.kill._target_=tests.helpers.KillAtStep",
            f"+callbacks.kill.step={CRASH_STEP}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -9, result.stderr[-2000:]
    checkpoint = crashed / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    assert not (crashed / "model").exists()  # it died before finishing

    uninterrupted_metrics, uninterrupted = train(make_train_cfg(*RECIPE, run_name="uninterrupted"))
    resumed_metrics, resumed = train(make_train_cfg(*RECIPE, f"ckpt_path={checkpoint}", run_name="resumed"))

    assert resumed_metrics["train/global_step"] == uninterrupted_metrics["train/global_step"] == 12
    before = step_losses(crashed)
    after = step_losses(Path(resumed["run_dir"]))
    reference = step_losses(Path(uninterrupted["run_dir"]))
    assert sorted(before) == list(range(CRASH_STEP))
    assert min(after) == CRASH_STEP  # no batch was trained twice
    assert sorted(before) + sorted(after) == sorted(reference)
    for step, loss in {**before, **after}.items():
        assert loss == pytest.approx(reference[step], rel=1e-4), f"step {step}"
    assert resumed_metrics["val/loss"] == pytest.approx(uninterrupted_metrics["val/loss"], rel=1e-4)
    assert resumed["module"].tokens_trained == uninterrupted["module"].tokens_trained
