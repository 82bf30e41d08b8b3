"""Training precision that fits the hardware: the choice, its override, and bf16's loss against fp32."""

from __future__ import annotations

import pytest

from tests.conftest import compose_config
from tonetune.hardware import MIXED, best_precision, cpu_flags
from tonetune.training.train import train


@pytest.mark.parametrize(
    ("accelerator", "flags", "gpu", "expected"),
    [
        ("cpu", {"avx512f", "avx512_bf16"}, False, "bf16-mixed"),
        ("cpu", {"avx512f", "amx_bf16", "amx_tile"}, False, "bf16-mixed"),
        ("cpu", {"avx512f", "avx2"}, True, "32-true"),  # emulated bf16 is slower than fp32
        ("gpu", set(), True, "bf16-mixed"),
        ("gpu", {"avx512_bf16"}, False, "32-true"),  # e.g. a T4: no bf16
        ("auto", {"avx512_bf16"}, False, "bf16-mixed"),
    ],
)
def test_precision_follows_what_the_hardware_computes_natively(accelerator, flags, gpu, expected) -> None:
    assert best_precision(accelerator, frozenset(flags), gpu) == expected


def test_the_default_is_this_machines_choice_and_an_override_wins(tmp_path) -> None:
    native = any(flag in cpu_flags() for flag in ("avx512_bf16", "amx_bf16"))
    cfg = compose_config("train", [f"paths.output_dir={tmp_path}"])
    assert cfg.trainer.precision == ("bf16-mixed" if native else "32-true")
    for choice in ("32-true", "bf16-mixed"):
        cfg = compose_config("train", [f"paths.output_dir={tmp_path}", f"trainer.precision={choice}"])
        assert cfg.trainer.precision == choice


def _losses(make_train_cfg, precision: str, *extra: str) -> list[float]:
    _, objects = train(
        make_train_cfg(
            f"trainer.precision={precision}",
            "trainer.max_steps=8",
            "trainer.log_every_n_steps=1",
            "logger=csv",
            "validate_before_training=false",
            *extra,
            run_name=precision,
        )
    )
    import csv

    rows = list(csv.DictReader((objects["run_dir"] / "csv" / "metrics.csv").open()))
    return [float(r["train/loss"]) for r in rows if r.get("train/loss")]


# bf16 keeps 8 bits of mantissa: per-step losses within 2% of fp32's over the first steps.
TOLERANCE = 0.02


def test_bf16_training_keeps_the_fp32_loss_curve_on_the_tiny_model(make_train_cfg) -> None:
    full, mixed = _losses(make_train_cfg, "32-true"), _losses(make_train_cfg, MIXED)
    assert len(full) == len(mixed) >= 6
    assert all(abs(m - f) <= TOLERANCE * f for m, f in zip(mixed, full, strict=True)), (full, mixed)
    assert mixed != full, "bf16 did not run"  # close, not identical


@pytest.mark.slow
def test_bf16_training_keeps_the_fp32_loss_curve_on_the_embedded_model(make_train_cfg) -> None:
    extra = ("base_model=smollm2_135m", "data.max_length=128")
    full, mixed = _losses(make_train_cfg, "32-true", *extra), _losses(make_train_cfg, MIXED, *extra)
    assert len(full) == len(mixed) >= 6
    assert all(abs(m - f) <= TOLERANCE * f for m, f in zip(mixed, full, strict=True)), (full, mixed)
