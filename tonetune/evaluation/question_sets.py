"""The question sets an evaluation asks: the main one (the run's own data or any list) and extras.

A list without answers (a text file, or JSONL with only ``question``) is evaluated on everything
that needs no reference; the report says which metrics were left out.
"""

from __future__ import annotations

from pathlib import Path

from tonetune.data.loading import Columns
from tonetune.data.question_lists import QuestionSet, load_question_set
from tonetune.evaluation.settings import QuestionSettings


def evaluation_sets(settings: QuestionSettings, run_source: str, columns: Columns) -> list[QuestionSet]:
    """The main question set (``questions.source`` or the run's own data) and the extra lists."""
    source = settings.source or run_source
    name = (
        Path(source).stem if settings.source and Path(source).suffix in {".txt", ".jsonl"} else settings.split
    )
    main = load_question_set(name, source, settings.split, columns, "evaluation.questions.source")
    extra = [
        load_question_set(name, path, settings.split, columns, f"evaluation.questions.extra.{name}")
        for name, path in settings.extra.items()
        if path
    ]
    return [main.limited(settings.limit), *(s.limited(settings.limit) for s in extra)]
