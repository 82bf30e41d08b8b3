"""The console entrypoints as a user runs them: one-line errors, and multirun sweeps."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import FAST_TRAIN
from tests.helpers import error_lines, run_cli


def test_unknown_persona_is_one_line_that_lists_the_choices() -> None:
    result = run_cli("tonetune-train", "persona=does_not_exist")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "persona/does_not_exist" in lines[0]
    assert "elon_musk" in lines[0] and "schema" not in lines[0]


def test_malformed_data_line_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    data = tmp_path / "broken.jsonl"
    data.write_text('{"question": "Q", "answer": "A"}\n{"question": "Q2", "answer": }\n')
    result = run_cli(
        "tonetune-train", *FAST_TRAIN, f"data.source={data}", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 2
    errors = error_lines(result)
    assert errors == [f"tonetune-train: error: {data} line 2: not valid JSON (Expecting value at column 30)"]
    assert "Traceback" not in result.stderr


def test_bad_option_value_names_the_option() -> None:
    result = run_cli("tonetune-train", "adapter.kind=lorx")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tonetune-train: error: Error merging override adapter.kind=lorx: "
        "Invalid value 'lorx', expected one of [lora, freeze, full]"
    ]


def test_multirun_gives_one_folder_and_one_finished_wandb_run_per_job(tmp_path: Path) -> None:
    overrides = [o for o in FAST_TRAIN if not o.startswith("logger=")]
    result = run_cli(
        "tonetune-train",
        "-m",
        *overrides,
        "logger=wandb",
        "adapter.r=4,8",
        "optimizer.lr=1e-4,3e-4",
        env={
            "TONETUNE_OUTPUTS": str(tmp_path),
            "WANDB_MODE": "",
            "WANDB_API_KEY": "",
            "NETRC": str(tmp_path / "none"),
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        config = (job / ".hydra" / "overrides.yaml").read_text()
        metrics = json.loads((job / "metrics.json").read_text())
        assert (job / "model" / "adapter_model.safetensors").is_file()
        seen.add(config)
        (run,) = (job / "wandb").glob("offline-run-*")
        (record,) = run.glob("run-*.wandb")
        recorded = record.read_bytes()
        assert sweep.name.encode() in recorded  # the W&B group is the sweep
        assert f"{sweep.name}-job{job.name}".encode() in recorded
        assert "finishing run" in (run / "logs" / "debug.log").read_text()
        assert metrics["params/trainable"] > 0
    assert len(seen) == 4
    run_ids = {next((j / "wandb").glob("offline-run-*")).name.rsplit("-", 1)[1] for j in jobs}
    assert len(run_ids) == 4
