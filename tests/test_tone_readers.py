"""Tone readers that can tell one persona from another: hard negatives, validity and its flag.

Built from the shared sets (three personas answering the same questions, same splits). The base
model's own answers would take minutes of generation here, so the "base" negatives are short
plain answers to tonetune's general-knowledge questions: like the base's answers, they are not
another persona, and a reader trained against them alone learns "not plain", not "Elon".
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import SHARED_DIR, compose_config
from tonetune.config import REPO_ROOT, typed
from tonetune.evaluation.contrast import ContrastAnswer
from tonetune.evaluation.report import headline, render_report
from tonetune.evaluation.settings import ClassifierSettings, ContrastSettings
from tonetune.evaluation.stylometry import blend_features
from tonetune.evaluation.tone import build_pool, build_reader
from tonetune.evaluation.validity import CANNOT_TELL
from tonetune.models.embeddings import embed
from tonetune.persona import strip_markers
from tonetune.schemas import PersonaConfig

SETS = {"elon_musk": "elon_musk_gpt4", "shakespeare_bard": "shakespeare_bard", "stoic_mentor": "stoic_mentor"}
GENERAL = REPO_ROOT / "tonetune" / "resources" / "capability" / "general_mc.jsonl"


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def shared() -> dict:
    """Each persona's train and test answers, the plain stand-in for the base, embeddings memoised."""
    if not all((SHARED_DIR / "data" / f"{f}.jsonl").is_file() for f in SETS.values()):
        pytest.skip("the shared sets are not beside the repository")
    data = {name: _rows(SHARED_DIR / "data" / f"{file}.jsonl") for name, file in SETS.items()}
    general = _rows(GENERAL)
    base = ([r["question"] for r in general], [f"It is {r['choices'][r['answer']]}." for r in general])
    cfg = compose_config("train", ["paths.output_dir=/tmp/unused", "persona=elon_musk"])
    persona = typed(PersonaConfig, cfg.persona)
    texts = sorted({r["answer"] for rows in data.values() for r in rows} | set(base[1]))
    texts += sorted({strip_markers(t, persona) for t in texts} - set(texts))
    return {
        "data": data,
        "base": base,
        "persona": persona,
        "vectors": dict(zip(texts, embed(texts), strict=True)),
        "trained": {},
    }


def _answers(shared: dict, name: str, split: str) -> list[dict]:
    return [r for r in shared["data"][name] if r["split"] == split]


def _features(shared: dict, texts: list[str]) -> dict[str, np.ndarray]:
    vectors, persona = shared["vectors"], shared["persona"]
    stripped = [strip_markers(t, persona) for t in texts]
    return {
        "tone_classifier": np.stack([vectors[t] for t in texts]),
        "tone_classifier_masked": blend_features(np.stack([vectors[t] for t in stripped]), stripped),
    }


def _train(shared: dict, negatives: list[str]):
    """Elon readers on the train split, against ``negatives`` (every kind in the pool is checked)."""
    key = tuple(negatives)
    if key not in shared["trained"]:
        shared["trained"][key] = _build(shared, negatives)
    return shared["trained"][key]


def _build(shared: dict, negatives: list[str]):
    train = _answers(shared, "elon_musk", "train")
    contrast = [
        ContrastAnswer(r["question"], r["answer"], name)
        for name in ("shakespeare_bard", "stoic_mentor")
        for r in _answers(shared, name, "train")
    ]
    settings = ContrastSettings(negatives=negatives, base_short=False, stylometric=False)
    pool = build_pool(
        [r["question"] for r in train], [r["answer"] for r in train], [], contrast, settings, "elon_musk"
    )
    pool.add(shared["base"][1], shared["base"][0], "base", "neutral")
    return build_reader(
        shared["persona"], pool, ClassifierSettings(), settings, _features(shared, pool.texts)
    )


def _read_as_elon(shared: dict, tone, name: str) -> dict[str, float]:
    texts = [r["answer"] for r in _answers(shared, name, "test")]
    features = _features(shared, texts)
    return {
        "tone_classifier": tone.classifier.predict(features["tone_classifier"]).mean(),
        "tone_classifier_masked": tone.masked_classifier.predict(features["tone_classifier_masked"]).mean(),
    }


def test_hard_negatives_reject_another_persona_that_a_base_only_reader_accepts(shared) -> None:
    base_only, _ = _train(shared, ["base"])
    hard, _ = _train(shared, ["base", "other"])
    for reader in ("tone_classifier", "tone_classifier_masked"):
        accepted = max(
            _read_as_elon(shared, base_only, n)[reader] for n in ("shakespeare_bard", "stoic_mentor")
        )
        assert accepted >= 0.3, (reader, accepted)  # the base-only reader takes another persona for Elon
        for other in ("shakespeare_bard", "stoic_mentor"):
            assert _read_as_elon(shared, hard, other)[reader] <= 0.10, (reader, other)
        assert _read_as_elon(shared, hard, "elon_musk")[reader] >= 0.90, reader


def test_validity_flags_a_reader_that_cannot_tell_personas_apart(shared) -> None:
    _, poor = _train(shared, ["base"])
    _, good = _train(shared, ["base", "other"])
    for reader in ("tone_classifier", "tone_classifier_masked"):
        validity = poor[reader]["validity"]
        other = validity["fpr"]["other"]
        assert (
            other["value"] > 0.10
            and other["n"] == 2 * 152
            and other["low"] <= other["value"] <= other["high"]
        )
        assert CANNOT_TELL in validity["flags"] and poor[reader]["status"] == "flagged"
        assert set(validity["fpr"]) >= {"base", "other", "other:shakespeare_bard", "other:stoic_mentor"}
        assert good[reader]["validity"]["fpr"]["other"]["value"] <= 0.10
        assert CANNOT_TELL not in good[reader]["validity"]["flags"]
        assert 0.5 <= validity["length_baseline_accuracy"] <= 1.0
    report = render_report(_result(poor), [], {}, 0)
    first = report.splitlines()[:6]
    assert any("`tone_classifier`" in line and CANNOT_TELL in line for line in first), first
    printed = headline(_result(poor)).splitlines()  # what tonetune-evaluate (and the quickstart) print
    assert any("`tone_classifier`" in line and CANNOT_TELL in line for line in printed[:4]), printed


def _result(classifier: dict) -> dict:
    context = {
        "run_name": "r",
        "persona": "Elon",
        "run_dir": "r",
        "base_model": "b",
        "adapter": "lora",
        "one_model_in_memory": True,
        "data": "d",
        "questions": {"test": 0},
        "trained_with_prompt": False,
        "sampling": {},
        "candidate": "finetuned",
    }
    return {
        "context": context,
        "classifier": classifier,
        "metrics": {},
        "intervals": {},
        "differences": {},
        "sets": {},
    }
