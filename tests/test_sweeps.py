"""Sweeps and scale-out from the shell: Optuna with a summary, a cluster launcher run locally, CPU DDP."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FAST_TRAIN, compose_config
from tonetune.sweep_report import write_report


def run(*args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def only_sweep(root: Path, task: str = "train") -> Path:
    (sweep,) = (root / task / "multiruns").iterdir()
    return sweep


def test_optuna_sweep_of_six_trials_and_its_report(tmp_path: Path) -> None:
    run(
        "tonetune-train",
        "-m",
        "hparams_search=lora_optuna",
        "hydra.sweeper.n_trials=6",
        *FAST_TRAIN,
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        env={"TONETUNE_OUTPUTS": str(tmp_path)},
    )
    sweep = only_sweep(tmp_path)
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_params" in best and "adapter.r" in best
    result = run("tonetune-sweep-report", f"sweep_dir={sweep}")
    assert "ranked by val/loss (minimize)" in result.stdout
    with (sweep / "sweep_report.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    assert {"adapter.r", "adapter.alpha", "optimizer.lr", "trainer.max_epochs", "val/loss"} <= set(rows[0])
    losses = [float(r["val/loss"]) for r in rows]
    assert losses == sorted(losses)
    assert f"best_value: {losses[0]}" in best
    assert (sweep / "sweep_report.png").stat().st_size > 10_000
    assert (sweep / "sweep_report.md").read_text().count("\n| ") == 8  # header, rule, 6 jobs


def test_optuna_sweep_on_the_tone_score_evaluates_every_trial(tmp_path: Path) -> None:
    run(
        "tonetune-train",
        "-m",
        "hparams_search=lora_optuna_tone",
        "hydra.sweeper.n_trials=2",
        *FAST_TRAIN,
        "trainer.limit_train_batches=2",
        "evaluation.questions.limit=4",
        "evaluation.sampling.max_new_tokens=6",
        "evaluation.classifier.max_examples=10",
        "evaluation.classifier.folds=2",
        f"paths.response_cache={tmp_path / 'cache.sqlite'}",
        env={"TONETUNE_OUTPUTS": str(tmp_path)},
    )
    sweep = only_sweep(tmp_path)
    scores = [
        json.loads((sweep / j / "metrics.json").read_text())["eval/finetuned/tone_classifier"] for j in "01"
    ]
    for job in "01":
        assert (sweep / job / "evaluation" / "report.md").is_file()
        assert "base" not in json.loads((sweep / job / "evaluation" / "metrics.json").read_text())["metrics"]
    best = (sweep / "optimization_results.yaml").read_text()
    assert f"best_value: {max(scores)}" in best


def test_sweep_report_ranks_a_grid_by_any_metric(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for job, (lr, score) in enumerate([("1e-4", 0.5), ("3e-4", 0.9), ("1e-3", 0.7)]):
        (sweep / str(job) / ".hydra").mkdir(parents=True)
        (sweep / str(job) / ".hydra" / "overrides.yaml").write_text(f"- optimizer.lr={lr}\n- persona=yoda\n")
        (sweep / str(job) / ".hydra" / "config.yaml").write_text("optimized_metric: val/loss\n")
        (sweep / str(job) / "metrics.json").write_text(
            json.dumps({"val/loss": 1 - score, "eval/finetuned/tone_classifier": score})
        )
    (sweep / "3").mkdir()  # a job that never finished is skipped
    report = write_report(sweep, "eval/finetuned/tone_classifier")
    assert report["direction"] == "maximize" and report["parameters"] == ["optimizer.lr"]
    assert [r["job"] for r in report["rows"]] == [1, 2, 0]
    assert [r["optimizer.lr"] for r in report["rows"]] == [3e-4, 1e-3, 1e-4]


def test_cluster_launcher_config_runs_jobs_through_submitit_locally(tmp_path: Path) -> None:
    run(
        "tonetune-train",
        "-m",
        "+launcher=local",
        *FAST_TRAIN,
        "debug=fdr",
        "adapter.r=4,8",
        env={"TONETUNE_OUTPUTS": str(tmp_path)},
    )
    sweep = only_sweep(tmp_path, "debug")
    assert list((sweep / ".submitit").iterdir())
    for job in ("0", "1"):
        assert json.loads((sweep / job / "metrics.json").read_text())["params/trainable"] > 0


def test_slurm_launcher_config_composes(tmp_path: Path) -> None:
    cfg = compose_config(
        "train", ["+launcher=slurm", "hydra.launcher.partition=gpu", f"paths.output_dir={tmp_path}"]
    )
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu"


def test_two_process_ddp_on_cpu_splits_the_data(tmp_path: Path) -> None:
    single = tmp_path / "single"
    ddp = tmp_path / "ddp"
    run("tonetune-train", *FAST_TRAIN, f"hydra.run.dir={single}")
    result = run(
        "tonetune-train",
        *FAST_TRAIN,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        f"hydra.run.dir={ddp}",
    )
    steps = {
        name: json.loads((path / "metrics.json").read_text())["train/global_step"]
        for name, path in (("single", single), ("ddp", ddp))
    }
    assert steps == {"single": 6, "ddp": 3}  # 43 examples, batch 8: each of 2 processes sees half
    assert result.stdout.count("Run folder:") == 1
    assert (ddp / "model" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_pipeline_script_runs_end_to_end(tmp_path: Path) -> None:
    env = {"RUN": str(tmp_path / "pipeline"), "DATA": str(tmp_path / "data"), "QUESTIONS": "4", "EPOCHS": "2"}
    result = run("scripts/pipeline.sh", env=env, timeout=1800)
    assert "Pipeline finished" in result.stdout
    assert "| tone_classifier |" in result.stdout
    report = tmp_path / "pipeline" / "evaluate" / "report.md"
    assert report.is_file() and (tmp_path / "pipeline" / "evaluate" / "plots" / "metrics.png").is_file()
    timings = (tmp_path / "pipeline" / "timings.txt").read_text()
    assert [line.split(":")[0] for line in timings.splitlines()] == ["synthesize", "train_sft", "evaluate"]
    assert (tmp_path / "data" / "elon_musk" / "dataset_dict.json").is_file()
    chat = subprocess.run(
        ["tonetune-chat", f"run_dir={tmp_path / 'pipeline' / 'train_sft'}", f"hydra.run.dir={tmp_path}/chat"],
        input="What do you think about Mondays?\nWhy?\n/exit\n",
        capture_output=True,
        text=True,
        timeout=600,
    )
    answers = [line.removeprefix(">>> ") for line in chat.stdout.splitlines() if line.startswith(">>> ")]
    assert chat.returncode == 0 and len(answers) >= 2, chat.stderr[-2000:]
    assert answers[1] != answers[0]  # the follow-up gets its own answer, not the last one again
    assert chat.stderr.strip() == ""  # no library warnings or progress bars in the terminal
