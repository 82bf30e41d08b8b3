"""Who is speaking? Three fine-tuned personas and their base, read by ONE N-way reader.

The reader is tonetune's own (``tonetune.evaluation.confusion.SpeakerReader``: a multinomial
regression on standardised MiniLM embeddings), trained once on the TRAIN split of the three
shared sets (Elon, bard, Stoic: the same 152 questions) plus the base model's own answers to
those questions as ``neutral`` (unprompted, greedy, as the evaluation asks for them; read from
tonetune's response cache, generated there if missing, or from ``--base``). It then reads
answers to the 48 TEST questions, which never trained it:

- its own check: the shared sets' test answers and the base's (true persona known);
- the 4 x 4 matrix: each fine-tuned run's ``finetuned`` answers, and the base's (the ``base``
  column of the runs' ``evaluation/answers.jsonl``), one row each; the prompted base of each run
  as extra rows.

Every cell is the share read as that speaker with its Wilson 95% interval and its count; the
acceptance check (own persona >= 0.80, each other persona <= 0.10; the base read as neutral on
>= 0.80) is computed from them. A plot and a JSON of every number are written to ``--out``.

    .venv/bin/python bench/persona_confusion.py \
        --run elon_musk=outputs/train/runs/<elon run> \
        --run shakespeare_bard=outputs/train/runs/<bard run> \
        --run stoic_mentor=outputs/train/runs/<stoic run> --out outputs/persona_confusion
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from tonetune.config import REPO_ROOT, default_cache_dir
from tonetune.evaluation.confusion import SpeakerReader, held_out_confusion
from tonetune.evaluation.contrast import NEUTRAL, Pool
from tonetune.evaluation.plots import confusion
from tonetune.evaluation.validity import Rate
from tonetune.generation.sampling import Sampling
from tonetune.hardware import best_decode_dtype
from tonetune.llm.cache import ResponseCache
from tonetune.llm.local import LocalClient
from tonetune.llm.requests import ChatRequest
from tonetune.models.embeddings import embed
from tonetune.models.runs import read_run
from tonetune.persona import single_turn

SHARED = Path(os.environ.get("TONETUNE_SHARED", REPO_ROOT.parent / "shared")) / "data"
SETS = {"elon_musk": "elon_musk_gpt4", "shakespeare_bard": "shakespeare_bard", "stoic_mentor": "stoic_mentor"}
CLASSES = [*SETS, NEUTRAL]
OWN_AT_LEAST, OTHER_AT_MOST = 0.80, 0.10


def rows(path: Path) -> list[dict]:
    """A JSONL file's rows, sorted by id (the shared sets share ids, questions and splits)."""
    found = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(found, key=lambda r: r["id"])


def base_answers(run_dir: Path, questions: list[str], cache_path: Path) -> list[str]:
    """The base's own answers to ``questions``, decoded as ``tone.neutral_sampling`` says."""
    run = read_run(run_dir)
    evaluation = OmegaConf.load(run_dir / "config.yaml").get("evaluation", {})
    max_new_tokens = evaluation.get("sampling", {}).get("max_new_tokens", Sampling().max_new_tokens)
    greedy = Sampling(max_new_tokens=max_new_tokens).request_params()
    cache = ResponseCache(cache_path)
    try:
        dtype = evaluation.get("dtype") or best_decode_dtype()  # an older run folder: today's default
        client = LocalClient(run.base_model, evaluation.get("batch_size", 32), cache=cache, dtype=dtype)
        requests = [ChatRequest.of(single_turn(q), **greedy) for q in questions]
        return [r.text for r in client.complete(requests, desc="Base answers (neutral)")]
    finally:
        cache.close()


def read_answers(run_dir: Path) -> list[dict]:
    path = run_dir / "evaluation" / "answers.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def row_of(reader: SpeakerReader, texts: list[str]) -> dict[str, Any]:
    """The share of ``texts`` read as each speaker (Wilson 95% interval, hits/n) and their mean length."""
    read = reader.read(embed(texts))
    cells = {c: Rate.of(read[f"speaker/{c}"]).__dict__ for c in CLASSES}
    return {"cells": cells, "n": len(texts), "words": float(np.mean([len(t.split()) for t in texts]))}


def cell(rate: dict) -> str:
    return f"{rate['value']:.3f} [{rate['low']:.3f}, {rate['high']:.3f}] ({rate['hits']}/{rate['n']})"


def table(title: str, found: dict[str, dict]) -> list[str]:
    lines = [f"\n### {title}\n", "| answers read | n | words | " + " | ".join(CLASSES) + " |"]
    lines.append("| --- | ---: | ---: |" + " ---: |" * len(CLASSES))
    for name, r in found.items():
        cells = " | ".join(cell(r["cells"][c]) for c in CLASSES)
        lines.append(f"| {name} | {r['n']} | {r['words']:.1f} | {cells} |")
    return lines


def verdict(name: str, truth: str, r: dict) -> str:
    """Acceptance: own speaker on >= 80% of the answers, each other persona on <= 10%."""
    own = r["cells"][truth]["value"]
    others = {c: r["cells"][c]["value"] for c in SETS if c != truth}
    ok = own >= OWN_AT_LEAST and (truth == NEUTRAL or all(v <= OTHER_AT_MOST for v in others.values()))
    worst = max(others, key=others.get)
    return (
        f"- {name}: read as {truth} {own:.3f} (goal >= {OWN_AT_LEAST}); most-read other persona "
        f"{worst} {others[worst]:.3f} (goal <= {OTHER_AT_MOST}): **{'PASS' if ok else 'FAIL'}**"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="persona=run_dir, once per persona")
    parser.add_argument("--base", type=Path, help="the base's answers (JSONL: shared ids, `answer`)")
    parser.add_argument("--cache", type=Path, help="tonetune's response cache (default: its default)")
    parser.add_argument("--out", type=Path, default=Path("outputs/persona_confusion"))
    args = parser.parse_args()
    runs = {k: Path(v) for k, v in (a.split("=", 1) for a in args.run)}
    if not runs or not set(runs) <= set(SETS):
        parser.error(f"--run takes persona=run_dir for any of {', '.join(SETS)} (all three for the 4 x 4)")
    first = next(iter(runs))
    data = {name: rows(SHARED / f"{file}.jsonl") for name, file in SETS.items()}
    train = {name: [r for r in found if r["split"] == "train"] for name, found in data.items()}
    test = {name: [r for r in found if r["split"] == "test"] for name, found in data.items()}
    questions = [r["question"] for r in train["elon_musk"]]
    if any([r["question"] for r in t] != questions for t in train.values()):
        raise SystemExit("the shared sets' train questions differ")
    if args.base:
        by_id = {r["id"]: r["answer"] for r in rows(args.base)}
        neutral = [by_id[r["id"]] for r in train["elon_musk"]]
        neutral_source = str(args.base)
    else:
        cache = args.cache or default_cache_dir() / "teacher" / "responses.sqlite"
        neutral = base_answers(runs[first], questions, cache)
        neutral_source = f"response cache {cache}"

    # One reader for all: every persona's train answers and the base's own, grouped by question.
    pool = Pool()
    for name, found in train.items():
        pool.add([r["answer"] for r in found], questions, "persona", name)
    pool.add(neutral, questions, "base", NEUTRAL)
    vectors = embed(pool.texts)
    reader = SpeakerReader(seed=0).fit(vectors, pool.speakers)
    held_out = held_out_confusion(vectors, pool, folds=5, seed=0)

    # Its check on answers it never saw (test questions): the shared test answers and the base's.
    answers = {name: read_answers(d) for name, d in runs.items()}
    test_questions = [r["question"] for r in test["elon_musk"]]
    for name, found in answers.items():
        if sorted(a["question"] for a in found) != sorted(test_questions):
            raise SystemExit(f"{runs[name]}: answers.jsonl is not the 48 test questions")
    bases = {name: [a["base"] for a in found] for name, found in answers.items()}
    same_base = all(sorted(b) == sorted(bases[first]) for b in bases.values())
    check = {f"{n} (shared test answers)": row_of(reader, [r["answer"] for r in t]) for n, t in test.items()}
    matrix = {f"{name} fine-tuned": row_of(reader, [a["finetuned"] for a in answers[name]]) for name in runs}
    matrix["base"] = row_of(reader, bases[first])
    prompted = {
        f"base prompted as {name}": row_of(reader, [a["base_prompted"] for a in answers[name]])
        for name in runs
        if "base_prompted" in answers[name][0]
    }
    truths = {**{f"{n} fine-tuned": n for n in SETS}, "base": NEUTRAL}

    counts = ", ".join(f"{s} {pool.speakers.count(s)}" for s in CLASSES)
    lines = [
        f"N-way reader: {len(pool.texts)} train answers ({counts}), "
        f"{len(CLASSES)} classes; neutral = the base's own answers ({neutral_source})",
        "\n### The reader on answers to held-out train questions (grouped 5-fold), true speaker -> read as\n",
        "| true speaker | " + " | ".join(CLASSES) + " |",
        "| --- |" + " ---: |" * len(CLASSES),
    ]
    for truth in CLASSES:
        lines.append(f"| {truth} | " + " | ".join(cell(held_out["rows"][truth][c]) for c in CLASSES) + " |")
    lines += table("The reader on the shared sets' test answers (48 questions it never saw)", check)
    shape = f"{len(matrix)} x {len(CLASSES)}"
    lines += table(f"{shape}: each fine-tuned model and the base, one reader (48 test questions)", matrix)
    lines += table("Extra rows: the base prompted with each persona card", prompted)
    missing = [n for n in SETS if n not in runs]
    lines += ["", f"Base answers identical across the runs: {same_base}"]
    lines += [f"Not in this matrix (no run given): {', '.join(missing)}"] if missing else []
    lines += ["", "Acceptance:"]
    lines += [verdict(name, truths[name], matrix[name]) for name in matrix]
    print("\n".join(lines))

    args.out.mkdir(parents=True, exist_ok=True)
    shares = {name: {c: r["cells"][c]["value"] for c in CLASSES} for name, r in matrix.items()}
    title = "Who is speaking (48 test questions)"
    plot = confusion(shares, CLASSES, args.out / "persona_confusion.png", title)
    everything = {
        "runs": {k: str(v) for k, v in runs.items()},
        "pool": pool.counts(),
        "held_out": held_out,
        "check": check,
        "matrix": matrix,
        "prompted": prompted,
        "same_base": same_base,
    }
    (args.out / "persona_confusion.json").write_text(json.dumps(everything, indent=1))
    (args.out / "persona_confusion.md").write_text("\n".join(lines) + "\n")
    print(f"\nPlot: {plot}\nNumbers: {args.out / 'persona_confusion.json'}")


if __name__ == "__main__":
    main()
