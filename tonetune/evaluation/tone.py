"""The tone reader of an evaluation: readers trained on the run's data against hard negatives.

Every reader learns the run's train answers (persona) against what the persona is not: the base
model's own, unprompted answers to the same questions, other personas' answers and plain answers
(``evaluation.contrast``), and the base's answers cut to the persona's length. Three readers: MiniLM
embeddings (``tone_classifier``), the same with the persona's marker matches removed
(``tone_classifier_masked``), and a topic-blind stylometric one (``tone_stylometric``); an N-way
reader says who is speaking. Each comes with its validity on answers to held-out questions.
"""

from __future__ import annotations

from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from tonetune.data.loading import Columns, load_conversations
from tonetune.evaluation.classifier import ToneClassifier
from tonetune.evaluation.confusion import SpeakerReader, held_out_confusion
from tonetune.evaluation.contrast import (
    NEUTRAL,
    ContrastAnswer,
    Pool,
    add_contrast,
    contrast_answers,
    cut_to_length,
)
from tonetune.evaluation.lineup import Models
from tonetune.evaluation.scoring import ToneReader
from tonetune.evaluation.settings import ClassifierSettings, ContrastSettings, EvaluationSettings
from tonetune.evaluation.stylometry import BlendedClassifier, StylometricClassifier
from tonetune.evaluation.validity import measure_validity
from tonetune.generation.sampling import Sampling
from tonetune.llm.cache import ResponseCache
from tonetune.llm.local import LocalClient
from tonetune.models.runs import Run
from tonetune.persona import strip_markers, word_count
from tonetune.schemas import PersonaConfig

Features = dict[str, np.ndarray]
"""Reader name -> the features of every answer in the pool (computed once, e.g. by a test)."""


def reader_examples(run: Run, settings: EvaluationSettings, columns: Columns) -> tuple[list[str], list[str]]:
    """The run's train questions and persona answers the readers learn from (up to ``max_examples``)."""
    train = load_conversations(run.data.source, columns)["train"]
    rows = train.select(range(min(settings.classifier.max_examples, len(train))))["messages"]
    questions = [next(m["content"] for m in r if m["role"] == "user") for r in rows]
    return questions, [r[-1]["content"] for r in rows]


def neutral_sampling(settings: EvaluationSettings) -> Sampling:
    """How the base's own answers to the train questions are decoded: plain greedy, no penalty.

    The base as it answers by itself, unprompted (and as the cache has kept it).
    """
    return Sampling(max_new_tokens=settings.sampling.max_new_tokens)


def train_tone_reader(
    run: Run, settings: EvaluationSettings, questions: list[str], persona_texts: list[str], neutral: list[str]
) -> tuple[ToneReader, dict[str, Any]]:
    """The reader, and what the report says about it (accuracy, validity, who-is-speaking matrix).

    ``neutral``: the base's own answers to ``questions`` (``neutral_sampling``).
    """
    contrast = contrast_answers(
        settings.contrast.files if settings.contrast.files else {},
        _dataset_dir(run.data.source) if settings.contrast.dataset_split else None,
        settings.contrast.split,
        run.persona.name,
    )
    pool = build_pool(questions, persona_texts, neutral, contrast, settings.contrast, run.persona.name)
    return build_reader(run.persona, pool, settings.classifier, settings.contrast)


def build_pool(
    questions: list[str],
    persona_texts: list[str],
    base_texts: list[str],
    contrast: list[ContrastAnswer],
    settings: ContrastSettings,
    persona_name: str,
) -> Pool:
    """Every labelled answer: the persona's, the base's (whole and cut to length), the contrast ones."""
    pool = Pool()
    pool.add(persona_texts, questions, "persona", persona_name)
    if base_texts:
        pool.add(base_texts, questions, "base", NEUTRAL)
    if settings.base_short and persona_texts and base_texts:
        words = int(median(word_count(t) for t in persona_texts))
        pool.add([cut_to_length(t, words) for t in base_texts], questions, "base_short", NEUTRAL)
    taken: dict[str, int] = {}
    for answer in contrast:
        taken[answer.persona] = taken.get(answer.persona, 0) + 1
        if taken[answer.persona] <= settings.max_per_persona:
            add_contrast(pool, [answer])
    return pool


def readers(persona: PersonaConfig, classifier: ClassifierSettings, contrast: ContrastSettings) -> dict:
    """The binary readers by report name (untrained)."""
    folds, seed = classifier.folds, classifier.seed
    found: dict[str, ToneClassifier] = {
        "tone_classifier": ToneClassifier(folds, seed),
        "tone_classifier_masked": BlendedClassifier(
            folds, seed, transform=lambda t: strip_markers(t, persona)
        ),
    }
    if contrast.stylometric:
        found["tone_stylometric"] = StylometricClassifier(folds, seed)
    return found


def build_reader(
    persona: PersonaConfig,
    pool: Pool,
    classifier: ClassifierSettings,
    contrast: ContrastSettings,
    features: Features | None = None,
) -> tuple[ToneReader, dict[str, Any]]:
    """Train every reader on ``pool`` (the kinds in ``contrast.negatives``), and check each one."""
    features = dict(features or {})
    kinds = np.array(pool.kinds)
    trains = np.isin(kinds, ["persona", *contrast.negatives])
    labels = (kinds == "persona").astype(int)
    info: dict[str, Any] = {}
    trained = {}
    for name, reader in readers(persona, classifier, contrast).items():
        x = features[name] if name in features else reader.features(pool.texts)
        trained[name] = reader.fit_features(x[trains], labels[trains])
        validity = measure_validity(
            name, reader, x, pool, contrast.negatives, contrast.folds, classifier.seed, contrast.max_fpr
        )
        info[name] = {
            "held_out_accuracy": reader.held_out_accuracy,
            "held_out_size": reader.held_out_size,
            "validity": validity.to_json(),
            "status": validity.status,
        }
        features[name] = x
    vectors = features["tone_classifier"]
    speakers = SpeakerReader(classifier.seed).fit(vectors, pool.speakers)
    info["speakers"] = held_out_confusion(vectors, pool, contrast.folds, classifier.seed)
    info["contrast"] = {"counts": pool.counts(), "negatives": list(contrast.negatives)}
    tone = ToneReader(
        persona,
        trained["tone_classifier"],
        trained["tone_classifier_masked"],
        trained.get("tone_stylometric"),
        speakers,
    )
    return tone, info


def _dataset_dir(source: str) -> str | None:
    """The folder a dataset lives in (its contrast split sits beside it), or None for a hub id."""
    path = Path(source).expanduser()
    return str(path if path.is_dir() else path.parent) if path.exists() else None


def base_client(run: Run, models: Models, settings: EvaluationSettings, cache: ResponseCache) -> LocalClient:
    """The base model as a cached client (a 4-bit base, as QLoRA runs hold it, is cached apart)."""
    quantized = models.shared and run.adapter.quantization is not None
    variant = run.adapter.quantization.value if quantized else ""
    return LocalClient(
        run.base_model,
        settings.batch_size,
        cache=cache,
        engine=models.base,
        adapter=models.base_adapter,
        variant=variant,
    )
