"""The tone reader of an evaluation: two classifiers trained on the run's own data.

Both learn the run's train answers (persona) against the base model's own, unprompted answers to
the same questions (neutral); the masked one reads every text with the persona's marker matches
removed, so it must find the tone without emojis and hashtags.
"""

from __future__ import annotations

from typing import Any

from tonetune.data.loading import Columns, load_conversations
from tonetune.evaluation.classifier import ToneClassifier
from tonetune.evaluation.lineup import Models
from tonetune.evaluation.scoring import ToneReader
from tonetune.evaluation.settings import EvaluationSettings
from tonetune.llm.cache import ResponseCache
from tonetune.llm.local import LocalClient
from tonetune.llm.requests import ChatRequest
from tonetune.models.runs import Run
from tonetune.persona import single_turn, strip_markers


def train_tone_reader(
    run: Run, settings: EvaluationSettings, models: Models, columns: Columns, cache: ResponseCache
) -> tuple[ToneReader, dict[str, Any]]:
    """The reader, and what the report says about its classifiers (cross-validated accuracy)."""
    train = load_conversations(run.cfg.data.source, columns)["train"]
    rows = train.select(range(min(settings.classifier.max_examples, len(train))))["messages"]
    questions = [next(m["content"] for m in r if m["role"] == "user") for r in rows]
    persona_texts = [r[-1]["content"] for r in rows]
    neutral = neutral_answers(run, models, questions, settings, cache)
    folds, seed = settings.classifier.folds, settings.classifier.seed
    plain = ToneClassifier(folds, seed).fit(persona_texts, neutral)
    masked = ToneClassifier(folds, seed, transform=lambda t: strip_markers(t, run.persona))
    masked.fit(persona_texts, neutral)
    info = {
        name: {"held_out_accuracy": c.held_out_accuracy, "held_out_size": c.held_out_size}
        for name, c in (("tone_classifier", plain), ("tone_classifier_masked", masked))
    }
    return ToneReader(run.persona, plain, masked), info


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


def neutral_answers(
    run: Run, models: Models, questions: list[str], settings: EvaluationSettings, cache: ResponseCache
) -> list[str]:
    """The base model's own, unprompted answers to the train questions (cached: they never change)."""
    client = base_client(run, models, settings, cache)
    requests = [
        ChatRequest.of(single_turn(q), temperature=0.0, max_tokens=settings.sampling.max_new_tokens)
        for q in questions
    ]
    return [r.text for r in client.complete(requests, desc="Neutral answers for the tone classifier")]
