"""DPO, ORPO and self-supervised LM: losses, data, the right reference, every adapter kind."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import EXAMPLE_DATA
from tonetune.data.corpus import CorpusDataModule
from tonetune.data.preference import PreferenceDataModule, load_pairs
from tonetune.errors import ConfigError
from tonetune.models.loss import IGNORE_INDEX, sequence_logprobs
from tonetune.models.runs import load_run_model, read_run
from tonetune.training.objectives import build_objective
from tonetune.training.objectives.dpo import DPO, DPOConfig, PreferenceLoss
from tonetune.training.objectives.orpo import ORPO, ORPOConfig
from tonetune.training.reference import REFERENCE_FILE
from tonetune.training.train import train

ADAPTERS = ["lora", "qlora", "dora", "freeze", "full"]
NEUTRAL = "I am a helpful assistant, and that is a good question to think about carefully."


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    """TRL conversational pairs: the example tweets chosen, a bland assistant answer rejected."""
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    rows = [json.loads(line) for line in EXAMPLE_DATA.read_text().splitlines()]
    with path.open("w") as handle:
        for row in rows:
            pair = {
                "prompt": [{"role": "user", "content": row["question"]}],
                "chosen": [{"role": "assistant", "content": row["answer"]}],
                "rejected": [{"role": "assistant", "content": NEUTRAL}],
                "split": row["split"],
            }
            handle.write(json.dumps(pair) + "\n")
    return path


def test_pairs_load_from_conversational_and_standard_rows(tmp_path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"prompt": "Q1?", "chosen": "A", "rejected": "B"})
        + "\n"
        + json.dumps(
            {
                "prompt": [{"role": "user", "content": "Q2?"}],
                "chosen": [{"role": "assistant", "content": "C"}],
                "rejected": [{"role": "assistant", "content": "D"}],
            }
        )
        + "\n"
    )
    rows = load_pairs(str(path))["train"]
    assert rows[0] == {"prompt": [{"role": "user", "content": "Q1?"}], "chosen": "A", "rejected": "B"}
    assert rows[1]["chosen"] == "C" and rows[1]["rejected"] == "D"
    path.write_text(json.dumps({"prompt": "Q?", "chosen": "A"}) + "\n")
    with pytest.raises(Exception, match=r"line 1: field 'rejected' must be an answer"):
        load_pairs(str(path))


def test_a_pair_batch_holds_chosen_then_rejected_with_the_end_of_turn_labelled(
    pairs_file, smollm_tokenizer
) -> None:
    data = PreferenceDataModule(str(pairs_file), tokenizer=smollm_tokenizer, batch_size=4)
    data.setup()
    batch = data.collate([data.split("train")[i] for i in range(3)])
    assert batch["input_ids"].shape[0] == 6 and batch["labels"].shape == batch["input_ids"].shape
    for row in range(6):
        labelled = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        text = smollm_tokenizer.decode(labelled)
        assert (
            text.rstrip().endswith("<|im_end|>") and "<|im_start|>" not in text
        )  # the answer, its end of turn
    assert all(NEUTRAL in smollm_tokenizer.decode(batch["input_ids"][r]) for r in range(3, 6))


def test_dpo_losses_match_the_papers_formulas() -> None:
    logps = torch.tensor([-10.0, -12.0, -20.0, -15.0])  # chosen 1, chosen 2, rejected 1, rejected 2
    reference = torch.tensor([-11.0, -12.5, -18.0, -15.5])
    counts = torch.tensor([5, 6, 5, 7])
    beta = 0.1
    dpo = DPO(DPOConfig(beta=beta))
    result = dpo.loss(logps, counts, 2, reference)
    margins = beta * ((logps[:2] - reference[:2]) - (logps[2:] - reference[2:]))
    assert result.loss.item() == pytest.approx((-torch.nn.functional.logsigmoid(margins)).mean().item())
    assert result.logs["rewards/accuracy"].item() == 0.5  # the second pair's margin is negative
    ipo = DPO(DPOConfig(beta=beta, loss_type=PreferenceLoss.ipo))
    per_token = (logps - reference) / counts
    expected = (((per_token[:2] - per_token[2:]) - 1 / (2 * beta)) ** 2).mean()
    assert ipo.loss(logps, counts, 2, reference).loss.item() == pytest.approx(expected.item())
    with_nll = DPO(DPOConfig(beta=beta, nll_weight=0.5))
    nll = -(logps[:2] / counts[:2]).mean()
    assert with_nll.loss(logps, counts, 2, reference).loss.item() == pytest.approx(
        result.loss.item() + 0.5 * nll.item()
    )


def test_orpo_loss_is_nll_plus_the_odds_ratio_term() -> None:
    logps, counts = torch.tensor([-4.0, -9.0]), torch.tensor([4, 3])
    orpo = ORPO(ORPOConfig(beta=0.1))
    chosen, rejected = math.exp(-1.0), math.exp(-3.0)  # mean token likelihoods
    log_odds = math.log(chosen / (1 - chosen)) - math.log(rejected / (1 - rejected))
    expected = 1.0 + 0.1 * -math.log(1 / (1 + math.exp(-log_odds)))
    assert orpo.loss(logps, counts, 1, None).loss.item() == pytest.approx(expected, rel=1e-5)
    assert not orpo.needs_reference


@pytest.mark.parametrize("objective", ["dpo", "orpo"])
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_preference_fast_dev_run_for_every_adapter(objective, adapter, pairs_file, make_train_cfg) -> None:
    metrics, objects = train(
        make_train_cfg(
            f"objective={objective}", f"adapter={adapter}", f"data.source={pairs_file}", "debug=fdr"
        )
    )
    assert math.isfinite(metrics["train/loss"]) and "train/rewards/margin" in metrics
    assert "train/rewards/accuracy" in metrics and "train/rewards/chosen" in metrics
    assert (Path(objects["run_dir"]) / REFERENCE_FILE).is_file() == (objective == "dpo")


@pytest.mark.parametrize("adapter", ["lora", "qlora"])
def test_dpo_after_sft_takes_the_sft_model_as_its_reference(adapter, pairs_file, make_train_cfg) -> None:
    _, sft = train(
        make_train_cfg(f"adapter={adapter}", "optimizer.lr=2e-2", "trainer.max_epochs=2", run_name="sft")
    )
    sft_dir = Path(sft["run_dir"])
    _, dpo = train(
        make_train_cfg(
            "objective=dpo",
            f"data.source={pairs_file}",
            f"init_from={sft_dir}",
            "adapter=lora",
            "debug=fdr",
            run_name="dpo",
        )
    )
    stored = torch.load(Path(dpo["run_dir"]) / REFERENCE_FILE, weights_only=True)["train"]
    data = dpo["datamodule"]
    batch = data.collate([data.split("train")[i] for i in range(4)])
    batch = {k: v for k, v in batch.items() if k != "reference_logps"}

    def logps(model) -> torch.Tensor:
        with torch.no_grad():
            values, _ = sequence_logprobs(model.eval(), batch)
        return torch.stack([values[:4], values[4:]], dim=1)

    sft_model, _ = load_run_model(read_run(sft_dir))
    assert torch.allclose(stored[:4], logps(sft_model), atol=1e-3)
    with sft_model.disable_adapter():
        assert not torch.allclose(stored[:4], logps(sft_model), atol=1e-2)  # the base would be wrong
    assert read_run(dpo["run_dir"]).adapter.name == adapter  # the SFT run's adapter kept training


def test_lm_objective_packs_documents_and_trains_every_token(
    smollm_tokenizer, make_train_cfg, tmp_path
) -> None:
    corpus = tmp_path / "posts.txt"
    corpus.write_text(
        "First post about rockets.\nStill the first post.\n\nSecond post 🚀 #Mars\n\nThird one.\n" * 20
    )
    data = CorpusDataModule(str(corpus), tokenizer=smollm_tokenizer, max_length=32, val_fraction=0.2)
    data.setup()
    train_rows = data.split("train")
    assert all(length == 32 for length in train_rows["length"][:-1])
    first = train_rows[0]
    assert first["labels"] == first["input_ids"]
    text = smollm_tokenizer.decode([t for row in train_rows["input_ids"] for t in row])
    assert (
        text.count("<|endoftext|>") + text.count(smollm_tokenizer.eos_token) >= 10
    )  # documents end with EOS
    metrics, _ = train(
        make_train_cfg("objective=lm", f"data.source={corpus}", "data.max_length=64", "debug=fdr")
    )
    assert math.isfinite(metrics["train/loss"])


def test_lm_objective_reads_one_field_of_a_jsonl_file(smollm_tokenizer) -> None:
    data = CorpusDataModule(
        str(EXAMPLE_DATA), tokenizer=smollm_tokenizer, columns={"text": "answer"}, max_length=64
    )
    data.setup()
    decoded = smollm_tokenizer.decode([t for row in data.split("train")["input_ids"] for t in row])
    first_answer = json.loads(EXAMPLE_DATA.read_text().splitlines()[0])["answer"]
    assert first_answer in decoded or first_answer[:30] in decoded
    assert "Should billionaires exist?" not in decoded  # the questions are not part of the corpus


def test_an_objective_node_is_bound_to_its_class_config_with_the_key_in_the_error(tmp_path) -> None:
    from tests.conftest import compose_config

    cfg = compose_config("train", ["objective=dpo", f"paths.output_dir={tmp_path}"])
    dpo = build_objective(cfg.objective)
    assert isinstance(dpo, DPO) and dpo.config.nll_weight == 0.2 and dpo.needs_reference
    for override, key in [
        ("objective.loss_type=hinge", "objective.loss_type"),
        ("+objective.bta=1", "objective.bta"),
    ]:
        bad = compose_config("train", ["objective=dpo", override, f"paths.output_dir={tmp_path}"])
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            build_objective(bad.objective)


def test_a_bad_objective_value_fails_before_the_model_loads(make_train_cfg, monkeypatch) -> None:
    import tonetune.training.train as train_module

    def no_model(*args, **kwargs):
        raise AssertionError("the tokenizer was loaded before the objective was checked")

    monkeypatch.setattr(train_module, "load_tokenizer", no_model)
    with pytest.raises(ConfigError, match=r"objective\.beta"):
        train(make_train_cfg("objective=orpo", "objective.beta=strong"))


@pytest.mark.parametrize(("objective", "has_ppl"), [("sft", True), ("orpo", False), ("dpo", False)])
def test_val_ppl_only_for_token_nll_losses(objective, has_ppl, pairs_file, make_train_cfg) -> None:
    data = [] if objective == "sft" else [f"data.source={pairs_file}"]
    metrics, _ = train(make_train_cfg(f"objective={objective}", *data, "debug=fdr"))
    assert ("val/ppl" in metrics) == has_ppl and "val/loss" in metrics
