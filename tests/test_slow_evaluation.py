"""Slow: fine-tune the embedded model on the shared GPT-4 train split, evaluate on its test split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import compose_config
from tonetune.evaluation.evaluate import evaluate
from tonetune.training.train import train

pytestmark = pytest.mark.slow


def test_finetuned_model_beats_the_unprompted_base_on_tone(make_train_cfg, tmp_path: Path) -> None:
    _, objects = train(
        make_train_cfg(
            "base_model=smollm2_135m", "data=elon_musk_gpt4", "trainer.max_epochs=3", "optimizer.lr=5e-4"
        )
    )
    run_dir = Path(objects["run_dir"])
    cfg = compose_config(
        "evaluate",
        [
            f"run_dir={run_dir}",
            "logger=none",
            f"paths.output_dir={tmp_path / 'eval'}",
            f"paths.response_cache={tmp_path / 'cache.sqlite'}",
            "evaluation.questions.limit=24",
            "evaluation.classifier.max_examples=96",
            "evaluation.sampling.max_new_tokens=64",
        ],
    )
    result, _ = evaluate(cfg)
    metrics = result["metrics"]
    base, tuned = metrics["base"], metrics["finetuned"]
    assert result["classifier"]["tone_classifier"]["held_out_accuracy"] >= 0.85
    assert tuned["tone_classifier"] > base["tone_classifier"] + 0.3
    assert tuned["marker/all"] > base["marker/all"] + 0.5
    assert tuned["stopped"] > base["stopped"]
    assert tuned["reference_ppl"] < base["reference_ppl"]
    for name in (
        "metrics.json",
        "report.md",
        "answers.jsonl",
        "plots/metrics.png",
        "plots/answer_lengths.png",
    ):
        assert (tmp_path / "eval" / name).is_file(), name
    assert (run_dir / "evaluation" / "report.md").is_file()
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["metrics"]["finetuned"]["tone_classifier"] == tuned["tone_classifier"]
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| tone_classifier |" in report and "smollm2-135m-instruct" in report


def test_a_single_step_is_not_significant_against_the_base(make_train_cfg, tmp_path: Path) -> None:
    """One optimizer step barely moves the model: the tone differences' intervals contain 0."""
    _, objects = train(
        make_train_cfg(
            "base_model=smollm2_135m",
            "data=elon_musk_gpt4",
            "trainer.max_steps=1",
            "optimizer.lr=5e-4",  # the recipe's rate: one step of it
            "validate_before_training=false",
        )
    )
    cfg = compose_config(
        "evaluate",
        [
            f"run_dir={objects['run_dir']}",
            "logger=none",
            f"paths.output_dir={tmp_path / 'eval'}",
            f"paths.response_cache={tmp_path / 'cache.sqlite'}",
            "evaluation.questions.limit=24",
            "evaluation.classifier.max_examples=64",
            "evaluation.sampling.max_new_tokens=48",
            "evaluation.pressure.questions=0",
            "evaluation.multi_turn.conversations=0",
            "evaluation.capability.tasks=[]",
        ],
    )
    result, _ = evaluate(cfg)
    for metric in ("tone_classifier", "tone_classifier_masked", "marker/all"):
        delta = result["differences"]["base"][metric]
        assert delta["low"] <= 0 <= delta["high"] and not delta["significant"], (metric, delta)
    report = (tmp_path / "eval" / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| tone_classifier |")]
    assert any("(not significant)" in row for row in rows), rows
