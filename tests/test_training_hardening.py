"""Training that cannot teach what it should stops in one line: a diverged run, all-truncated data.

A run whose loss turns NaN exits non-zero, keeps its last finite checkpoint and writes no model;
a model with non-finite weights is refused where runs are loaded; data whose every example loses
its end of turn is refused unless asked for; duplicate rows are counted and never validate.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import EXAMPLE_DATA, FAST_TRAIN, compose_config
from tests.helpers import error_lines, run_cli
from tonetune.config import typed
from tonetune.data.base import example_key
from tonetune.data.datamodule import ChatDataModule
from tonetune.errors import DataError, DivergedError
from tonetune.models.base_models import load_tokenizer
from tonetune.models.runs import ADAPTER_WEIGHTS, MODEL_DIR, load_run_model, read_run
from tonetune.schemas import BaseModelConfig
from tonetune.serving.served import load_served
from tonetune.training.train import train

TRAIN = ["tonetune-train", *FAST_TRAIN, "validate_before_training=false"]


class PoisonAtStep(L.Callback):
    """Turn one trainable weight into NaN when optimizer step ``step`` is about to start."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, *args) -> None:
        if trainer.global_step == self.step:
            weight = next(p for p in pl_module.parameters() if p.requires_grad)
            with torch.no_grad():
                weight.view(-1)[0] = float("nan")


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = error_lines(result)
    assert line.startswith("tonetune-train: error: ")
    return line


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    cfg = compose_config("train", ["base_model=tiny", f"paths.output_dir={tmp_path_factory.mktemp('t')}"])
    return load_tokenizer(typed(BaseModelConfig, cfg.base_model))


# -- 7: a run that diverges ---------------------------------------------------------------------


def test_a_run_that_diverges_to_nan_exits_in_one_line_and_writes_no_model(tmp_path) -> None:
    result = run_cli(*TRAIN, "optimizer.lr=1e37", f"hydra.run.dir={tmp_path}")
    line = one_error_line(result)
    assert "diverged at step 2" in line and "optimizer.lr=1e+37" in line, line
    assert not (tmp_path / MODEL_DIR).exists() and not (tmp_path / "metrics.json").exists()


def test_a_diverged_run_keeps_its_last_finite_checkpoint(make_train_cfg, tmp_path) -> None:
    cfg = make_train_cfg(
        "validate_before_training=false",
        "callbacks.last_checkpoint.every_n_train_steps=1",
        "+callbacks.poison._target_=tests.test_training_hardening.PoisonAtStep",
        "+callbacks.poison.step=3",
    )
    with pytest.raises(DivergedError, match="diverged at step 4: the training loss is nan") as raised:
        train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert f"the last finite checkpoint is kept: {last} (step 3)" in str(raised.value)
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 3
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values())
    assert not (Path(cfg.paths.output_dir) / MODEL_DIR).exists()


def test_serve_and_evaluate_refuse_a_model_with_non_finite_weights(make_train_cfg, tmp_path) -> None:
    cfg = make_train_cfg("validate_before_training=false", "trainer.max_steps=1")
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    weights = run_dir / MODEL_DIR / ADAPTER_WEIGHTS
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, weights)
    with pytest.raises(
        DivergedError, match=re.escape(f"{run_dir / MODEL_DIR}: refused: ") + ".* is not finite"
    ):
        load_run_model(read_run(run_dir))  # what the evaluation loads a run with
    with pytest.raises(DivergedError, match="is not finite"):
        load_served([str(run_dir)], None, None, merge_adapter=False)


# -- 9: truncation, duplicates --------------------------------------------------------------------


def test_data_whose_every_example_is_truncated_is_refused_unless_allowed(make_train_cfg, tokenizer) -> None:
    # The example answers start within 48 tokens and every conversation is longer (56 to 77).
    with pytest.raises(DataError, match=r"all 43 training examples are longer than data\.max_length=48"):
        train(make_train_cfg("data.max_length=48"))
    allowed = ChatDataModule(str(EXAMPLE_DATA), tokenizer, max_length=48, allow_truncated=True)
    allowed.setup()
    assert all(len(ids) == 48 for ids in allowed.split("train")["input_ids"])


def test_duplicate_rows_are_counted_and_never_validate(tokenizer, tmp_path, caplog) -> None:
    rows = [json.loads(line) for line in EXAMPLE_DATA.read_text().splitlines() if line.strip()]
    rows = [{k: v for k, v in row.items() if k != "split"} for row in rows[:20]]
    twice = tmp_path / "twice.jsonl"  # 10 rows twice: a held-out validation must keep copies together
    twice.write_text("".join(json.dumps(row) + "\n" for row in rows + rows[:10]))
    given = tmp_path / "given.jsonl"  # a validation split of 5 rows, 3 of them copies of train rows
    given.write_text(
        "".join(json.dumps(row) + "\n" for row in rows[:15])
        + "".join(json.dumps({**row, "split": "validation"}) + "\n" for row in rows[12:17])
    )
    with caplog.at_level(logging.WARNING, logger="tonetune.data.base"):
        held = ChatDataModule(str(twice), tokenizer, val_fraction=0.3)
        held_split = held._train_validation(held.load())
        kept = ChatDataModule(str(given), tokenizer)
        kept_split = kept._train_validation(kept.load())
    for split in (held_split, kept_split):
        train_keys = {example_key(row) for row in split["train"]}
        assert not any(example_key(row) in train_keys for row in split["validation"])
    assert (
        len(held_split["train"]) + len(held_split["validation"]) == 30 and len(held_split["validation"]) >= 6
    )
    assert held.duplicates == {"train_duplicates": 10, "validation_copies_dropped": 0}
    assert len(kept_split["validation"]) == 2 and kept.duplicates["validation_copies_dropped"] == 3
    assert "10 of 30 train rows are exact duplicates" in caplog.text
    assert "3 validation rows are copies of train rows" in caplog.text
