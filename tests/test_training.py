"""Training on the tiny model: each adapter kind trains, counts its parameters right, and saves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tonetune.generation.engine import Engine
from tonetune.generation.sampling import Sampling
from tonetune.models.runs import load_run_model, read_run
from tonetune.training.train import train

ADAPTERS = ["lora", "qlora", "dora", "freeze", "full"]


def tiny_blocks_params(module) -> dict[str, int]:
    causal_lm = module.model.get_base_model() if hasattr(module.model, "get_base_model") else module.model
    decoder = causal_lm.get_decoder()
    return {
        "block": sum(p.numel() for p in decoder.layers[-1].parameters()),
        "norm": sum(p.numel() for p in decoder.norm.parameters()),
        "head": causal_lm.get_output_embeddings().weight.numel(),
    }


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_fast_dev_run_for_every_adapter(adapter: str, make_train_cfg) -> None:
    cfg = make_train_cfg(f"adapter={adapter}", "debug=fdr", "logger=none")
    metrics, objects = train(cfg)
    module, run_dir = objects["module"], Path(objects["run_dir"])
    trainable, total = metrics["params/trainable"], metrics["params/total"]
    assert 0 < trainable <= total
    assert torch.isfinite(torch.tensor(metrics["val/loss"]))
    model_dir = run_dir / "model"
    if adapter in {"lora", "qlora", "dora"}:
        assert (model_dir / "adapter_model.safetensors").is_file()
        assert not (model_dir / "model.safetensors").exists()
        # r=16 on q,k,v,o,gate,up,down of 2 blocks (hidden 64, 2 kv heads of 16, mlp 128)
        lora = 2 * 16 * ((64 + 64) + (64 + 32) + (64 + 32) + (64 + 64) + 2 * (64 + 128) + (128 + 64))
        if adapter == "dora":
            lora += 2 * (64 + 32 + 32 + 64 + 128 + 128 + 64)  # one magnitude per output feature
        assert trainable == lora
    else:
        assert (model_dir / "model.safetensors").is_file()
        sizes = tiny_blocks_params(module)
        expected = total if adapter == "full" else 2 * sizes["block"] + sizes["norm"] + sizes["head"]
        assert trainable == expected
    if adapter == "qlora":
        assert any("Linear4bit" in type(m).__name__ for m in module.model.modules())
    assert (run_dir / "config.yaml").is_file()
    saved_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert saved_metrics["params/trainable"] == trainable
    assert (model_dir / "tokenizer.json").is_file()


def test_saved_adapter_reloads_with_the_trained_weights(make_train_cfg) -> None:
    cfg = make_train_cfg("adapter=lora", "trainer.max_epochs=1", "optimizer.lr=0.01")
    _, objects = train(cfg)
    run_dir = Path(objects["run_dir"])
    run = read_run(run_dir)
    model, tokenizer = load_run_model(run)
    assert run.adapter.name == "lora"
    trained = dict(objects["module"].model.named_parameters())
    with safe_open(run_dir / "model" / "adapter_model.safetensors", "pt") as saved:
        names = list(saved.keys())
        assert names and all("lora_" in n for n in names)
        name = next(n for n in names if "lora_B" in n)
        assert saved.get_tensor(name).abs().sum() > 0  # lora_B starts at zero: it trained
    reloaded = dict(model.named_parameters())
    key = next(k for k in reloaded if "lora_B" in k)
    assert torch.equal(reloaded[key], trained[key].detach())
    answers = Engine(model, tokenizer).chat(
        [[{"role": "user", "content": "Hi?"}]], Sampling(max_new_tokens=5), progress=False
    )
    assert answers[0].completion_tokens > 0


def test_checkpoints_hold_only_trainable_weights(make_train_cfg) -> None:
    cfg = make_train_cfg("adapter=lora", "trainer.max_epochs=1")
    _, objects = train(cfg)
    checkpoint = torch.load(Path(objects["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["state_dict"]
    assert all("lora_" in name for name in checkpoint["state_dict"])
    assert checkpoint["tokens_trained"] == objects["module"].tokens_trained > 0


def test_overfitting_a_batch_drives_the_loss_down(make_train_cfg) -> None:
    cfg = make_train_cfg(
        "adapter=full",
        "debug=overfit",
        "trainer.max_epochs=30",
        "optimizer.lr=0.01",
        "scheduler=constant",
        "callbacks.model_checkpoint.monitor=null",
    )
    metrics, _ = train(cfg)
    assert metrics["train/loss"] < 3.0  # starts near ln(49152) = 10.8


def test_system_prompt_is_trained_with_when_asked(make_train_cfg) -> None:
    cfg = make_train_cfg("prepend_system_prompt=true", "debug=fdr")
    _, objects = train(cfg)
    data = objects["datamodule"]
    tokenizer = data.tokenizer
    first = tokenizer.decode(data.splits["train"][0]["input_ids"])
    assert "You are Elon Musk answering questions on Twitter" in first


def adapter_tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(path, "pt") as saved:
        return {name: saved.get_tensor(name) for name in saved.keys()}  # noqa: SIM118 (safe_open has no __iter__)


@pytest.mark.parametrize("select", ["best", "last"])
def test_model_folder_holds_the_weights_checkpoint_select_names(make_train_cfg, select) -> None:
    # "best" by the highest validation loss: the first epoch's weights, surely not the last ones
    metrics, objects = train(
        make_train_cfg(
            f"checkpoint.select={select}",
            "callbacks.model_checkpoint.mode=max",
            "trainer.max_epochs=3",
            "optimizer.lr=5e-3",
            "~callbacks.early_stopping",
        )
    )
    run_dir = Path(objects["run_dir"])
    saved = adapter_tensors(run_dir / "model" / "adapter_model.safetensors")
    best = torch.load(metrics["best_checkpoint"], weights_only=True)["state_dict"]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert "epoch00" in metrics["best_checkpoint"] and last.keys() == best.keys()

    def matches(state: dict[str, torch.Tensor]) -> bool:
        # peft saves "base_model.model...lora_A.weight" for the module's
        # "model.base_model.model...lora_A.default.weight"
        by_suffix = {k.removeprefix("model.").replace(".default", ""): v for k, v in state.items()}
        return all(torch.equal(by_suffix[name], tensor) for name, tensor in saved.items())

    assert matches(best if select == "best" else last)
    assert not matches(last if select == "best" else best)
    assert metrics["model_weights"].startswith(select)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["trainer.max_epochs=3"],
        ["trainer.accumulate_grad_batches=4"],
        ["trainer.max_steps=4"],
        ["trainer.limit_train_batches=3", "trainer.max_epochs=2"],
        ["trainer.limit_train_batches=0.5"],
    ],
)
def test_schedule_length_equals_lightnings_own_estimate(make_train_cfg, overrides) -> None:
    _, objects = train(make_train_cfg(*overrides, "validate_before_training=false"))
    assert objects["module"].total_steps == objects["trainer"].estimated_stepping_batches


def test_evaluate_after_training_uses_the_model_in_memory(make_train_cfg) -> None:
    from tonetune.workflows import run_training

    metrics, objects = run_training(
        make_train_cfg(
            "evaluate_after_training=true",
            "evaluation.questions.limit=4",
            "evaluation.sampling.max_new_tokens=6",
            "evaluation.classifier.max_examples=10",
            "evaluation.classifier.folds=2",
        )
    )
    run_dir = Path(objects["run_dir"])
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["eval/finetuned/tone_classifier"] == metrics["eval/finetuned/tone_classifier"]
    report = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert report["context"]["one_model_in_memory"] is True
    assert set(report["metrics"]) == {"base", "base_prompted", "finetuned", "reference"}
