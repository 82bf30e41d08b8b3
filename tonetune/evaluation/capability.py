"""Capability kept: does fine-tuning cost general ability? EleutherAI's lm-eval harness answers.

The base and the fine-tuned model run the same tasks through lm-eval's ``HFLM`` (the model already
in memory: an adapter run is measured with the adapter off, then on). The offline default is a
small multiple-choice task shipped with tonetune (50 general-knowledge items); with internet, any
hub task lm-eval knows (``hellaswag``, ``arc_easy``, ...). Per-item accuracies give the delta an
interval paired by item.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from tonetune import stats
from tonetune.config import RESOURCES_DIR
from tonetune.evaluation.settings import CapabilitySettings
from tonetune.generation.engine import Engine

log = logging.getLogger(__name__)

LOCAL_TASKS = {
    "tonetune_general_mc": {
        "task": "tonetune_general_mc",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(RESOURCES_DIR / "capability" / "general_mc.jsonl")}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "Question: {{question}}\nAnswer:",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{answer}}",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }
}


def task_manager(settings: CapabilitySettings) -> Any:
    """lm-eval's task index: its own tasks only when a task is not ours (indexing them takes seconds)."""
    from lm_eval.tasks import TaskManager

    hub_tasks = any(name not in LOCAL_TASKS for name in settings.tasks)
    return TaskManager(verbosity="WARNING", include_defaults=hub_tasks)


def run_tasks(
    engine: Engine, adapter: str | None, settings: CapabilitySettings, tasks_index: Any
) -> dict[str, np.ndarray]:
    """Per-item accuracy of each task for the model with ``adapter`` (``BASE``: adapters off)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    tasks = [LOCAL_TASKS.get(name, name) for name in settings.tasks]
    with engine.using(adapter):
        model = HFLM(pretrained=engine.model, tokenizer=engine.tokenizer, batch_size=settings.batch_size)
        output = simple_evaluate(
            model=model,
            tasks=tasks,
            limit=settings.limit,
            log_samples=True,
            verbosity="WARNING",
            bootstrap_iters=0,
            task_manager=tasks_index,
        )
    return {
        name: np.array([sample["acc"] for sample in sorted(samples, key=lambda s: s["doc_id"])], dtype=float)
        for name, samples in output["samples"].items()
    }


def capability(
    base: tuple[Engine, str | None], finetuned: tuple[Engine, str | None], settings: CapabilitySettings
) -> dict[str, Any]:
    """Accuracy of base and fine-tuned on every task, and the fine-tuned minus base delta, with intervals."""
    index = task_manager(settings)
    before, after = run_tasks(*base, settings, index), run_tasks(*finetuned, settings, index)
    report = {}
    for name in before:
        indices = stats.resample_indices(len(before[name]))
        report[name] = {
            "items": len(before[name]),
            "base": stats.mean(before[name], indices).as_dict(),
            "finetuned": stats.mean(after[name], indices).as_dict(),
            "delta": _delta(stats.paired_difference(after[name], before[name], indices)),
        }
    return report


def _delta(estimate: stats.Estimate) -> dict[str, Any]:
    return {**estimate.as_dict(), "significant": estimate.significant}
