"""Can the tone readers tell one persona from another? Base-only negatives (before) against hard ones (after).

Each persona's readers are trained as the evaluation trains them (``tonetune.evaluation.tone``), on
the TRAIN split of the shared sets: the persona's answers against the base model's own answers
(``before``), or against those, the other two personas' answers and the base's answers cut to the
persona's length (``after``; plus plain answers with ``--plain``). Then they read the TEST split
of every set (questions never used to train them): the true-positive rate on the persona's test
answers, the false-positive rate on the others', with Wilson 95% intervals and counts. The
readers' own validity (grouped out-of-fold on the train split) is printed too.

The base's answers are the embedded SmolLM2-135M's, unprompted and greedy as the evaluation asks
for them (``--base``: a JSONL with the shared ids, ``answer`` per question; generate once, cached
under outputs/). Usage:

    OMP_NUM_THREADS=1 .venv/bin/python bench/reader_validity.py \
        --base outputs/reader_validity/base.jsonl [--plain outputs/reader_validity/plain.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from tonetune.config import REPO_ROOT, compose, typed
from tonetune.evaluation.contrast import ContrastAnswer, cut_to_length
from tonetune.evaluation.settings import ClassifierSettings, ContrastSettings
from tonetune.evaluation.stylometry import BlendedClassifier, StylometricClassifier, blend_features
from tonetune.evaluation.tone import build_pool, build_reader, readers
from tonetune.evaluation.validity import Rate
from tonetune.models.embeddings import embed
from tonetune.schemas import PersonaConfig

SHARED = Path(os.environ.get("TONETUNE_SHARED", REPO_ROOT.parent / "shared")) / "data"
SETS = {"elon_musk": "elon_musk_gpt4", "shakespeare_bard": "shakespeare_bard", "stoic_mentor": "stoic_mentor"}
VARIANTS = {"before": ["base"], "after": ["base", "other", "plain", "base_short"]}
_VECTORS: dict[str, np.ndarray] = {}


def rows(path: Path) -> list[dict]:
    """A JSONL file's rows, in the shared sets' order (by id)."""
    found = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(found, key=lambda r: r["id"])


def vectors(texts: list[str]) -> np.ndarray:
    """MiniLM embeddings, each text embedded once per run of this script."""
    todo = sorted({t for t in texts if t not in _VECTORS})
    _VECTORS.update(zip(todo, embed(todo), strict=True))
    return np.stack([_VECTORS[t] for t in texts]) if texts else np.zeros((0, 384))


def features(reader, texts: list[str]) -> np.ndarray:
    """What ``reader`` reads, with the embeddings from the cache."""
    source = [reader.transform(t) for t in texts] if reader.transform else texts
    if isinstance(reader, BlendedClassifier):
        return blend_features(vectors(source), source)
    return reader.features(texts) if isinstance(reader, StylometricClassifier) else vectors(source)


def persona_card(name: str) -> PersonaConfig:
    cfg = compose("train", [f"persona={name}", "paths.output_dir=/tmp/unused"])
    return typed(PersonaConfig, cfg.persona)


def test_sets(name: str, data: dict, base: list[dict], plain: list[dict] | None) -> dict[str, list[str]]:
    """What the readers read: every set's test answers (the persona's own first)."""
    test = {
        n: [r["answer"] for r in data[n] if r["split"] == "test"]
        for n in [name, *(n for n in data if n != name)]
    }
    test["base"] = [r["answer"] for r in base if r["split"] == "test"]
    if plain:
        test["plain (SmolLM2 prompted)"] = [r["answer"] for r in plain if r["split"] == "test"]
    words = int(np.median([len(t.split()) for t in test[name]]))
    test["base_short"] = [cut_to_length(t, words) for t in test["base"]]
    return test


def run(name: str, data: dict, base: list[dict], plain: list[dict] | None, variant: str) -> dict:
    """Train ``name``'s readers with the ``variant``'s negatives; their validity and test reading."""
    persona = persona_card(name)
    train = [r for r in data[name] if r["split"] == "train"]
    base_train = {r["id"]: r["answer"] for r in base if r["split"] == "train"}
    contrast = [
        ContrastAnswer(r["question"], r["answer"], other)
        for other in data
        if other != name
        for r in data[other]
        if r["split"] == "train"
    ]
    contrast += [
        ContrastAnswer(r["question"], r["answer"], "plain") for r in plain or [] if r["split"] == "train"
    ]
    settings = ContrastSettings(negatives=VARIANTS[variant])
    pool = build_pool(
        [r["question"] for r in train],
        [r["answer"] for r in train],
        [base_train[r["id"]] for r in train],
        contrast,
        settings,
        name,
    )
    classifier = ClassifierSettings()
    found = {n: features(r, pool.texts) for n, r in readers(persona, classifier, settings).items()}
    tone, info = build_reader(persona, pool, classifier, settings, found)
    read = {}
    for set_name, texts in test_sets(name, data, base, plain).items():
        models = {"tone_classifier": tone.classifier, "tone_classifier_masked": tone.masked_classifier}
        models["tone_stylometric"] = tone.stylometric
        read[set_name] = {n: Rate.of(m.predict(features(m, texts))).__dict__ for n, m in models.items()}
    return {"validity": {n: v["validity"] for n, v in info.items() if "validity" in v}, "test": read}


def cell(rate: dict) -> str:
    return f"{rate['value']:.3f} [{rate['low']:.3f}, {rate['high']:.3f}] ({rate['hits']}/{rate['n']})"


def print_tables(name: str, results: dict) -> None:
    readers_ = list(next(iter(results.values()))["test"][name])
    print(f"\n### {name}: test split read as {name} (TPR on its own row, FPR elsewhere)\n")
    print("| answers read | variant | " + " | ".join(readers_) + " |")
    print("| --- | --- |" + " ---: |" * len(readers_))
    for set_name in results["before"]["test"]:
        for variant, result in results.items():
            cells = [cell(result["test"][set_name][r]) for r in readers_]
            print(f"| {set_name} | {variant} | " + " | ".join(cells) + " |")
    print(f"\n{name}: validity on the train split (grouped by question, out of fold)\n")
    for variant, result in results.items():
        for reader, v in result["validity"].items():
            fpr = "; ".join(f"{k} {cell(r)}" for k, r in v["fpr"].items())
            print(
                f"- {variant} `{reader}`: TPR {cell(v['tpr'])}; FPR {fpr}; balanced accuracy "
                f"{v['balanced_accuracy']:.3f} (length only {v['length_baseline_accuracy']:.3f}); "
                f"flags: {v['flags'] or 'none'}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--plain", type=Path)
    parser.add_argument("--personas", nargs="*", default=list(SETS))
    parser.add_argument("--json", type=Path, help="write every number here too")
    args = parser.parse_args()
    data = {name: rows(SHARED / f"{file}.jsonl") for name, file in SETS.items()}
    base, plain = rows(args.base), rows(args.plain) if args.plain else None
    everything = {}
    for name in args.personas:
        everything[name] = {v: run(name, data, base, plain, v) for v in VARIANTS}
        print_tables(name, everything[name])
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
