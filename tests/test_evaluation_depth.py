"""The evaluation beyond one question list: plain lists, the marker-blind classifier, pressure,
multi-turn drift and capability, on one real evaluation of a tiny-model run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import compose_config
from tests.test_evaluation import NEUTRAL
from tonetune.config import typed
from tonetune.evaluation.classifier import ToneClassifier
from tonetune.evaluation.evaluate import evaluate
from tonetune.hardware import best_decode_dtype
from tonetune.persona import strip_markers
from tonetune.schemas import PersonaConfig
from tonetune.training.train import train

QUESTIONS = [
    "What do you think about Mondays?",
    "Should cities ban cars from their centres?",
    "Is it worth learning to cook?",
    "What makes a good boss?",
    "Would you live on the Moon?",
]
CONTESTANTS = ("base", "base_prompted", "finetuned")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[dict, Path]:
    """A tiny-model run, evaluated on a plain text list with pressure, 3-turn drift and capability."""
    root = tmp_path_factory.mktemp("depth")
    train(
        compose_config(
            "train",
            [
                "base_model=tiny",
                "data=example",
                "logger=none",
                "trainer.max_epochs=1",
                "optimizer.lr=1e-2",  # far enough from the base that their answers differ
                "trainer.enable_progress_bar=false",
                f"paths.output_dir={root / 'run'}",
            ],
        )
    )
    questions = root / "my_questions.txt"
    questions.write_text("\n".join(QUESTIONS) + "\n\n")  # a blank line is not a question
    cfg = compose_config(
        "evaluate",
        [
            f"run_dir={root / 'run'}",
            "logger=none",
            f"paths.output_dir={root / 'eval'}",
            f"paths.response_cache={root / 'cache.sqlite'}",
            f"evaluation.questions.source={questions}",
            "evaluation.sampling.max_new_tokens=8",
            "evaluation.classifier.max_examples=12",
            "evaluation.classifier.folds=2",
            "evaluation.pressure.questions=2",
            "evaluation.pressure.max_new_tokens=8",
            "evaluation.multi_turn.conversations=2",
            "evaluation.multi_turn.turns=3",
            "evaluation.multi_turn.max_new_tokens=8",
            "evaluation.capability.limit=12",
        ],
    )
    result, _ = evaluate(cfg)
    return result, root / "eval"


def test_a_plain_question_list_is_evaluated_without_reference_metrics(evaluated) -> None:
    result, folder = evaluated
    answers = [json.loads(line) for line in (folder / "answers.jsonl").read_text().splitlines()]
    assert [a["question"] for a in answers] == QUESTIONS
    for name in CONTESTANTS:
        metrics = result["metrics"][name]
        assert "tone_classifier" in metrics and "tone_classifier_masked" in metrics
        assert not {"reference_ppl", "rouge_l", "length_ratio"} & set(metrics)
        low, high = result["intervals"][name]["tone_classifier"]
        assert low <= metrics["tone_classifier"] <= high
    assert list(result["context"]["questions"].values()) == [len(QUESTIONS)]
    report = (folder / "report.md").read_text()
    assert "no reference answers" in report and "reference_ppl" in report
    decoded = result["context"]["decoded_in"]  # the machine's default: bf16 only where it is native
    assert decoded == best_decode_dtype() and f"local contestants decode in {decoded}" in report


def test_every_contestant_is_put_under_pressure_with_every_probe(evaluated) -> None:
    result, folder = evaluated
    pressure = result["pressure"]
    rows = [json.loads(line) for line in (folder / "pressure_answers.jsonl").read_text().splitlines()]
    assert len(rows) == pressure["questions"] * len(pressure["probes"]) == 2 * len(pressure["probes"])
    assert {"plain_one_sentence", "formal", "no_markers", "neutral_system"} <= set(pressure["probes"])
    neutral = next(r for r in rows if r["conversation"][0]["role"] == "system")
    assert "neutral assistant" in neutral["conversation"][0]["content"]
    for name in CONTESTANTS:
        assert all(isinstance(r[name], str) for r in rows)
        low, high = pressure["intervals"][name]["tone_classifier"]
        assert 0 <= low <= pressure["metrics"][name]["tone_classifier"] <= high <= 1
    assert (folder / "plots" / "pressure.png").stat().st_size > 0


def test_each_contestant_answers_its_own_earlier_turns(evaluated) -> None:
    result, folder = evaluated
    rows = [json.loads(line) for line in (folder / "multi_turn.jsonl").read_text().splitlines()]
    assert sorted(r["contestant"] for r in rows) == sorted(CONTESTANTS * 2)
    follow_ups = ["Why?", "Can you give me an example?", "I don't agree. Convince me."]
    for row in rows:
        messages = row["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"] * 3
        asked = [m["content"] for m in messages[2::2]]
        assert asked in (follow_ups[:2], follow_ups[1:])  # the templates rotate by conversation
    by_contestant = {name: [r for r in rows if r["contestant"] == name] for name in CONTESTANTS}
    base_first = [r["messages"][1]["content"] for r in by_contestant["base"]]
    tuned_first = [r["messages"][1]["content"] for r in by_contestant["finetuned"]]
    assert base_first != tuned_first  # each conversation carries its own contestant's answers
    per_turn = result["multi_turn"]["per_turn"]["finetuned"]
    assert len(per_turn) == 3 and "repeats_previous" not in per_turn[0]
    assert all("repeats_previous" in turn and turn["tone_classifier"]["n"] == 2 for turn in per_turn[1:])
    assert (folder / "plots" / "multi_turn.png").stat().st_size > 0
    summaries = {"persona_share_turns_2_3", "persona_share_turns_3_3", "repeats_previous"}
    assert set(result["multi_turn"]["metrics"]["finetuned"]) == summaries  # named from the turn count
    assert "persona_share_turns_2_3" in (folder / "report.md").read_text()


def test_the_report_says_where_the_time_went(evaluated) -> None:
    result, folder = evaluated
    seconds = result["timings"]["seconds"]
    assert {"scoring", "multi-turn", "capability"} <= set(seconds)
    assert any(name.startswith("answers") for name in seconds)
    assert all(value >= 0 for value in seconds.values())
    assert "## Time per section" in (folder / "report.md").read_text()


def test_capability_is_measured_by_lm_eval_for_base_and_finetuned(evaluated) -> None:
    result, folder = evaluated
    task = result["capability"]["tonetune_general_mc"]
    assert task["items"] == 12
    for side in ("base", "finetuned"):
        assert 0 <= task[side]["value"] <= 1 and task[side]["n"] == 12
    delta = task["delta"]
    assert delta["value"] == pytest.approx(task["finetuned"]["value"] - task["base"]["value"])
    assert delta["low"] <= delta["value"] <= delta["high"]
    assert "Capability kept (lm-eval)" in (folder / "report.md").read_text()


def test_the_masked_classifier_cannot_see_the_markers(tmp_path: Path) -> None:
    """Texts that differ only by emojis and hashtags: the plain classifier tells them apart, the masked one
    cannot."""
    cfg = compose_config("train", [f"paths.output_dir={tmp_path}", "persona=elon_musk"])
    persona = typed(PersonaConfig, cfg.persona)
    marked = [f"{text} 🚀🔥 #Mars #Future" for text in NEUTRAL]
    assert [strip_markers(t, persona) for t in marked] == NEUTRAL
    plain = ToneClassifier(folds=3, seed=0).fit(marked, NEUTRAL)
    blind = ToneClassifier(folds=3, seed=0, transform=lambda t: strip_markers(t, persona))
    masked = blind.fit(marked, NEUTRAL)
    assert plain.held_out_accuracy >= 0.9
    assert masked.held_out_accuracy <= 0.6
