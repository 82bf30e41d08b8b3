"""Slow: LoRA and QLoRA on the embedded SmolLM2-135M with the shared GPT-4 Elon-Musk train split."""

from __future__ import annotations

from pathlib import Path

import pytest

from tonetune.generation.engine import Engine
from tonetune.generation.sampling import Sampling
from tonetune.models.runs import load_run_model, read_run
from tonetune.training.train import train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("adapter", ["lora", "qlora"])
def test_embedded_model_learns_the_tone_and_reloads(adapter: str, make_train_cfg) -> None:
    cfg = make_train_cfg(
        "base_model=smollm2_135m",
        "data=elon_musk_gpt4",
        f"adapter={adapter}",
        "trainer.max_epochs=2",  # 2 x 18 steps of 8 examples
        "optimizer.lr=5e-4",
    )
    metrics, objects = train(cfg)
    assert metrics["train/global_step"] == 36
    assert metrics["val/loss"] < metrics["val/loss_before"] - 0.5
    run_dir = Path(objects["run_dir"])
    assert (run_dir / "model" / "adapter_model.safetensors").is_file()

    run = read_run(run_dir)
    model, tokenizer = load_run_model(run)
    assert run.adapter.name == adapter
    if adapter == "qlora":
        assert any("Linear4bit" in type(m).__name__ for m in model.modules())
    questions = ["What do you think about electric cars?", "Would you ever live on Mars?"]
    answers = Engine(model, tokenizer).chat(
        [[{"role": "user", "content": q}] for q in questions], Sampling(max_new_tokens=48), progress=False
    )
    assert all(len(a.text.split()) >= 3 for a in answers)
    assert any("#" in a.text for a in answers)
