"""The metric registry, typed results and the length-controlled tone table, on real scorers and files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.test_evaluation import NEUTRAL, TWEETS
from tonetune import stats
from tonetune.config import CONFIG_DIR, typed
from tonetune.data.question_lists import QuestionSet
from tonetune.evaluation import registry
from tonetune.evaluation.classifier import ToneClassifier
from tonetune.evaluation.contestants import Answers as ContestantAnswers
from tonetune.evaluation.evaluate import _with_judge
from tonetune.evaluation.length_control import length_buckets
from tonetune.evaluation.multi_turn import turn_metric_names
from tonetune.evaluation.outputs import write_outputs
from tonetune.evaluation.report import headline
from tonetune.evaluation.results import EvaluationResult, SetResult, SetSummary
from tonetune.evaluation.scoring import Scorer, Scores, ToneReader, compare
from tonetune.evaluation.settings import REFERENCE
from tonetune.schemas import PersonaConfig
from tonetune.sweep_report import SHOWN_METRICS

QUESTIONS = [f"What about topic number {i}?" for i in range(6)]
REFERENCES = TWEETS[:6]
FINETUNED = ["Yes! Mars! 🚀 #Go", *TWEETS[6:9], "Sure thing! #Fun", NEUTRAL[0]]
CONTEXT = {
    "run_name": "r",
    "persona": "Elon",
    "run_dir": "r",
    "base_model": "b",
    "adapter": "lora",
    "one_model_in_memory": True,
    "data": "d",
    "questions": {"test": 6},
    "trained_with_prompt": False,
    "sampling": {},
    "candidate": "finetuned",
}
CLASSIFIER = {
    name: {"held_out_accuracy": 0.9, "held_out_size": 24}
    for name in ("tone_classifier", "tone_classifier_masked")
}


def exclaims(answers: registry.Answers) -> np.ndarray:
    """A test-only per-answer metric: the answer has an exclamation mark."""
    return np.array(["!" in text for text in answers.texts], dtype=float)


@pytest.fixture
def exclamation_metric():
    metric = registry.register(
        registry.Metric("exclaims", "has an exclamation mark", headline=True, plotted=True, compute=exclaims)
    )
    yield metric
    registry.unregister(metric.name)


@pytest.fixture
def scored() -> SetResult:
    """A question set with references, answered by two contestants and scored for real."""
    card = OmegaConf.load(CONFIG_DIR / "persona" / "elon_musk.yaml")
    persona = typed(PersonaConfig, OmegaConf.masked_copy(card, [k for k in card if k != "defaults"]))
    tone = ToneReader(persona, ToneClassifier(folds=2, seed=0).fit(TWEETS, NEUTRAL))
    scorer = Scorer(QuestionSet("test", "planted", QUESTIONS, REFERENCES), tone)
    result = SetResult(scorer.questions)
    result.answers["finetuned"] = ContestantAnswers(FINETUNED, ["stop"] * 5 + ["length"])
    result.answers["base"] = ContestantAnswers(NEUTRAL[:6], ["length"] * 6)
    for name, answers in result.answers.items():
        result.scores[name] = scorer.score(answers.texts, answers.finish_reasons)
    per_answer = {name: s.per_answer for name, s in result.scores.items()}
    result.differences = compare(per_answer, "finetuned", scorer.indices)
    result.scores[REFERENCE] = scorer.reference
    return result


def _evaluation(result: SetResult, **sections) -> EvaluationResult:
    summary = SetSummary(
        "planted",
        len(result.questions),
        True,
        {name: dict(s.estimates) for name, s in result.scores.items()},
        result.differences,
    )
    return EvaluationResult(CONTEXT, {"test": summary}, None, CLASSIFIER) | sections


def test_every_metric_list_is_the_registry_s() -> None:
    headline_names = registry.names(headline=True)
    assert headline_names[:3] == ["tone_classifier", "tone_classifier_masked", "marker/all"]
    assert {"reference_ppl", "judge/fidelity", "length_ratio"} <= set(headline_names)
    assert registry.names(needs_reference=True) == [
        "similarity_to_reference",
        "rouge_l",
        "length_ratio",
        "relevance_ratio",
        "reference_ppl",
    ]
    assert registry.names(pressure=True) == ["tone_classifier", "tone_classifier_masked", "marker/all"]
    # sweep_report cannot import evaluation/ (stages never import each other): its list stays the registry's
    shown = [name.removeprefix("eval/finetuned/") for name in SHOWN_METRICS if name.startswith("eval/")]
    assert set(shown) <= set(headline_names)
    assert registry.better("reference_ppl") is registry.Better.LOWER
    assert registry.spec("marker/emoji").name == "marker/"
    assert registry.spec(turn_metric_names(5)[0]).name == "persona_share_turns_"
    assert not registry.is_paired("mean_words")


def test_a_new_per_answer_metric_is_one_function_and_one_registry_line(exclamation_metric, scored) -> None:
    finetuned = scored.scores["finetuned"]
    assert finetuned.estimates["exclaims"].value == pytest.approx(2 / 6)
    assert scored.scores[REFERENCE].estimates["exclaims"].value == 0.0
    difference = scored.differences["base"]["exclaims"]
    assert difference["value"] == pytest.approx(2 / 6)
    table = headline(_evaluation(scored))
    assert "| exclaims | 0.333 [" in table
    assert "| exclaims | +0.333 [" in table


def test_scores_follow_the_registry_s_conditions(scored) -> None:
    finetuned, reference = scored.scores["finetuned"], scored.scores[REFERENCE]
    assert finetuned.estimates["stopped"].value == pytest.approx(5 / 6)
    assert finetuned.estimates["length_ratio"].value == pytest.approx(
        np.mean([len(t.split()) for t in FINETUNED]) / np.mean([len(t.split()) for t in REFERENCES])
    )
    assert {"stopped", "similarity_to_reference", "length_ratio"}.isdisjoint(reference.estimates)
    assert {"distinct_2", "mean_words", "relevance"} <= set(reference.estimates)
    assert "mean_words" not in scored.differences["base"]


def test_the_typed_result_is_today_s_metrics_json_and_writers_leave_it_alone(scored, tmp_path: Path) -> None:
    pairwise = {"win": 3, "loss": 1, "tie": 0, "invalid": 0, "win_rate": 0.75, "win_rate_ci": [0.3, 0.95]}
    judge = {
        "model": "judge",
        "pairwise": {"base": {**pairwise, "swap_consistency": 1.0, "by_length": {}}},
        "fidelity": {"finetuned": {"fidelity": 7.0, "fidelity_invalid": 0}},
    }
    sets = _with_judge(_evaluation(scored).sets, judge, "finetuned")
    result = EvaluationResult(CONTEXT, sets, judge, CLASSIFIER)
    before = copy.deepcopy(result.to_json())
    write_outputs(tmp_path, result, [scored], 2, [])
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert result.to_json() == before
    assert set(written) == {"context", "metrics", "intervals", "differences", "sets", "judge", "classifier"}
    assert written["metrics"] == written["sets"]["test"]["metrics"]
    assert written["metrics"]["finetuned"]["judge/fidelity"] == 7.0
    assert written["metrics"]["finetuned"]["judge/win_rate_vs_base"] == 0.75
    assert "judge/fidelity" not in written["intervals"]["finetuned"]
    assert set(written["sets"]["test"]) == {
        "source",
        "questions",
        "has_references",
        "metrics",
        "intervals",
        "differences",
    }
    assert (
        result["metrics"]["finetuned"]["tone_classifier"]
        == written["metrics"]["finetuned"]["tone_classifier"]
    )


def test_tone_by_answer_length_counts_each_bucket(tmp_path: Path) -> None:
    questions = QuestionSet("test", "planted", QUESTIONS, REFERENCES)
    words = np.array([5, 5, 5, 5, 12, 12, 12, 12, 30], dtype=float)  # terciles: 5 and 12
    tone = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=float)
    result = SetResult(questions)
    result.scores[REFERENCE] = Scores({"mean_words": words, "tone_classifier": tone})
    result.scores["finetuned"] = Scores({"mean_words": words[::-1].copy(), "tone_classifier": tone})
    buckets = length_buckets(result, ["tone_classifier", "tone_classifier_masked"])
    assert buckets["labels"] == ["<= 5 words", "6-12 words", "> 12 words"]
    shares = buckets["rows"][REFERENCE]["tone_classifier"]
    assert [(s["hits"], s["n"]) for s in shares] == [(4, 4), (1, 4), (0, 1)]
    assert shares[1]["value"] == pytest.approx(1 / 4)
    assert shares[1]["low"] == pytest.approx(stats.wilson(1, 4).low)
    assert [(s["hits"], s["n"]) for s in buckets["rows"]["finetuned"]["tone_classifier"]] == [
        (0, 4),
        (4, 4),
        (1, 1),
    ]
    assert "tone_classifier_masked" not in buckets["rows"][REFERENCE]


def test_the_report_shows_tone_by_length_beside_the_headline(scored, tmp_path: Path) -> None:
    write_outputs(tmp_path, _evaluation(scored), [scored], 1, [])
    report = (tmp_path / "report.md").read_text()
    section = report[report.index("## Headline") : report.index("## Every metric")]
    assert "Tone by answer length" in section
    assert "| finetuned | tone_classifier | " in section
    assert "| reference | tone_classifier_masked |" not in section  # no masked reader in this run
