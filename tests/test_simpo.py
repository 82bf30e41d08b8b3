"""SimPO: the paper's formula, no reference pass, and a real run on the tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import EXAMPLE_DATA
from tonetune.training.objectives import build_objective
from tonetune.training.reference import REFERENCE_FILE
from tonetune.training.train import train


def test_simpo_loss_is_the_papers_length_normalised_margin() -> None:
    simpo = build_objective(
        {"_target_": "tonetune.training.objectives.simpo.SimPO", "beta": 2.0, "gamma": 0.5}
    )
    logps = torch.tensor([-10.0, -12.0, -20.0, -6.0])  # chosen 1, chosen 2, rejected 1, rejected 2
    counts = torch.tensor([5, 6, 5, 2])
    mean = logps / counts
    expected = -F.logsigmoid(2.0 * (mean[:2] - mean[2:]) - 0.5).mean()
    result = simpo.loss(logps, counts, 2, None)
    assert result.loss.item() == pytest.approx(expected.item())
    # By sums the second pair is lost (-12 < -6); per token it is won (-2 > -3): length does not count.
    assert result.logs["rewards/accuracy"].item() == 1.0
    longer = simpo.loss(logps * 2, counts * 2, 2, None)  # the same answers twice as long
    assert longer.loss.item() == pytest.approx(result.loss.item())
    assert not simpo.needs_reference and not simpo.token_nll


def test_simpo_trains_the_tiny_model_on_a_preference_file(tmp_path: Path, make_train_cfg) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [json.loads(line) for line in EXAMPLE_DATA.read_text().splitlines()]
    pairs.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": r["question"],
                    "chosen": r["answer"],
                    "rejected": "A fine question.",
                    "split": r["split"],
                }
            )
            + "\n"
            for r in rows
        )
    )
    metrics, objects = train(make_train_cfg("objective=simpo", f"data.source={pairs}", "trainer.max_steps=4"))
    assert math.isfinite(metrics["train/loss"]) and "train/rewards/margin" in metrics
    assert "val/ppl" not in metrics
    run_dir = Path(objects["run_dir"])
    assert not (run_dir / REFERENCE_FILE).exists() and (run_dir / "model").is_dir()
