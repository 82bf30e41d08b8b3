"""Memory of serving several personas from one base: one server with N adapter runs against N servers.

Run as (from the repository root):
    python -m bench.multi_persona_memory [--runs RUN_A RUN_B]

Without ``--runs`` it first trains two short LoRA runs of the embedded SmolLM2-135M (personas
elon_musk and yoda, two steps each: the weights' values do not change their size). Each
measurement loads what ``tonetune-serve`` loads (``load_served``, adapters unmerged) in its own
process and answers one greedy question per persona; its peak RSS is compared with one persona's,
so the ratio reads "one base plus the adapters" (about 1.0) against "a server per persona" (N).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import peak_rss_mb

PERSONAS = ("elon_musk", "yoda")
QUESTION = "What do you think about Mondays?"


def train_run(persona: str, folder: Path) -> Path:
    """A two-step LoRA run of the embedded model for ``persona``."""
    from tonetune.config import compose
    from tonetune.training.train import train

    cfg = compose(
        "train",
        [
            "base_model=smollm2_135m",
            "data=example",
            f"persona={persona}",
            "logger=none",
            "trainer.max_steps=2",
            "trainer.enable_progress_bar=false",
            "validate_before_training=false",
            f"paths.output_dir={folder}",
        ],
    )
    _, objects = train(cfg)
    return Path(objects["run_dir"])


def serve_and_answer(runs: list[str]) -> dict:
    """Load ``runs`` as tonetune-serve does, answer once per persona; peak RSS and adapter sizes."""
    from tonetune.generation.engine import GenerationRequest
    from tonetune.generation.sampling import Sampling
    from tonetune.serving.served import load_served

    before = peak_rss_mb()
    served = load_served(runs, None, None, merge_adapter=False)
    prompt = served.engine.encode([{"role": "user", "content": QUESTION}])
    for model in served.models.values():  # the engine decodes one adapter per batch
        served.engine.generate([GenerationRequest(prompt, Sampling(max_new_tokens=16), model.adapter)])
    adapters_mb = sum((Path(r) / "model" / "adapter_model.safetensors").stat().st_size for r in runs) / 2**20
    return {"peak_mb": peak_rss_mb(), "imports_mb": before, "adapters_mb": adapters_mb}


def measure(runs: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.multi_persona_memory", "--worker", *runs],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"serving {runs} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", help="adapter runs of one base model (default: train two)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(serve_and_answer(args.worker)), flush=True)
        return
    runs = args.runs or [str(train_run(p, Path(tempfile.mkdtemp()) / p)) for p in PERSONAS]
    one = measure(runs[:1])
    together = measure(runs)
    n = len(runs)
    for label, r in (("1 persona", one), (f"{n} personas", together)):
        print(
            f"{label}: peak RSS {r['peak_mb']:.0f} MB ({r['peak_mb'] - r['imports_mb']:.0f} MB above the "
            f"imports); adapters on disk {r['adapters_mb']:.1f} MB"
        )
    print(
        f"{n} personas on one server / 1 persona: {together['peak_mb'] / one['peak_mb']:.2f}x peak RSS "
        f"(a server per persona: {n:.2f}x; goal: one base plus the adapters, about 1x)"
    )


if __name__ == "__main__":
    main()
