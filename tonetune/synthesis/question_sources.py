"""Where the questions come from: your files, the question set's shipped bank, or the teacher's lists.

The embedded 135M teacher writes poor questions ("How do they keep their own work?") and spent
about 40% of the offline synthesis on them, so by default it answers the question set's bank
instead; a real teacher writes its own lists from the set's prompts, round by round.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from typing import Any

from tonetune.data.question_lists import Question, read_question_file
from tonetune.errors import ConfigError
from tonetune.llm.client import LLMClient
from tonetune.schemas import QuestionSetConfig
from tonetune.synthesis.dedup import DedupReport, deduplicate
from tonetune.synthesis.questions import parse_question_list, question_request
from tonetune.synthesis.settings import QuestionSource, SynthesisQuestions

log = logging.getLogger(__name__)


def resolve_source(
    settings: SynthesisQuestions, question_set: QuestionSetConfig, teacher: LLMClient
) -> QuestionSource:
    """``auto`` becomes ``bank`` for the local teacher (when the set has one), ``teacher`` otherwise."""
    source = settings.source
    if source == QuestionSource.auto:
        source = QuestionSource.bank if teacher.in_process and question_set.bank else QuestionSource.teacher
    if source == QuestionSource.bank and not question_set.bank:
        raise ConfigError(f"questions.source=bank: question set {question_set.name!r} has no bank")
    return source


def collect_questions(
    settings: SynthesisQuestions, question_set: QuestionSetConfig, teacher: LLMClient, seed: int
) -> tuple[list[Question], dict[str, Any]]:
    """Questions from files, then from the bank or the teacher until each prompt has its share."""
    dedup = DedupReport()
    from_files = [q for path in settings.files for q in read_question_file(path)]
    kept = deduplicate(from_files, [], settings.near_duplicate_threshold, dedup)
    source = resolve_source(settings, question_set, teacher)
    counts = {"generated": 0, "unparseable_lists": 0, "from_bank": 0}
    if source == QuestionSource.bank:
        counts["from_bank"] = _add_from_bank(kept, question_set, settings, seed, dedup)
    elif source == QuestionSource.teacher:
        _add_from_teacher(kept, question_set, settings, teacher, dedup, counts)
    _warn_short(kept, question_set, source)
    report = {
        "source": source.value,
        **counts,
        "from_files": len(from_files),
        "exact_duplicates": dedup.exact,
        "near_duplicates": dedup.near,
        "near_duplicate_threshold": settings.near_duplicate_threshold,
        "kept": len(kept),
        "by_category": dict(Counter(q.category for q in kept)),
    }
    return kept, report


def _add_from_bank(
    kept: list[Question],
    question_set: QuestionSetConfig,
    settings: SynthesisQuestions,
    seed: int,
    dedup: DedupReport,
) -> int:
    """Up to ``questions_per_prompt`` bank questions per category, in a seeded random order."""
    bank = read_question_file(question_set.bank, option=f"question_set.bank ({question_set.name})")
    random.Random(seed).shuffle(bank)
    added = 0
    for prompt in question_set.prompts:
        wanted = question_set.questions_per_prompt - _count(kept, prompt.category)
        candidates = [q for q in bank if q.category == prompt.category]
        fresh = deduplicate(candidates, kept, settings.near_duplicate_threshold, dedup)[: max(wanted, 0)]
        kept.extend(fresh)
        added += len(fresh)
    return added


def _add_from_teacher(
    kept: list[Question],
    question_set: QuestionSetConfig,
    settings: SynthesisQuestions,
    teacher: LLMClient,
    dedup: DedupReport,
    counts: dict[str, int],
) -> None:
    """Round after round, ask for the questions each prompt still lacks, in short lists."""
    wanted = question_set.questions_per_prompt
    per_request = min(wanted, settings.per_request or wanted)
    for round_index in range(settings.max_rounds):
        short = [p for p in question_set.prompts if _count(kept, p.category) < wanted]
        if not short:
            return
        asked = [
            (p, i) for p in short for i in range(math.ceil((wanted - _count(kept, p.category)) / per_request))
        ]
        requests = [
            question_request(
                p.prompt,
                per_request,
                [q.text for q in kept if q.category == p.category],
                seed=round_index * 1000 + index,
                json_mode=teacher.supports_json,
                temperature=settings.temperature,
                tokens_per_question=settings.tokens_per_question,
            )
            for p, index in asked
        ]
        replies = teacher.complete(requests, desc=f"Questions (round {round_index + 1})")
        for (prompt, _), reply in zip(asked, replies, strict=True):
            parsed = parse_question_list(reply.text)
            counts["unparseable_lists"] += not parsed
            counts["generated"] += len(parsed)
            fresh = deduplicate(
                [Question(t, prompt.category) for t in parsed], kept, settings.near_duplicate_threshold, dedup
            )
            kept.extend(fresh[: wanted - _count(kept, prompt.category)])


def _warn_short(kept: list[Question], question_set: QuestionSetConfig, source: QuestionSource) -> None:
    if source == QuestionSource.files:
        return
    for prompt in question_set.prompts:
        have = _count(kept, prompt.category)
        if have < question_set.questions_per_prompt:
            log.warning(
                "Only %d of %d questions for %r", have, question_set.questions_per_prompt, prompt.category
            )


def _count(questions: list[Question], category: str) -> int:
    return sum(q.category == category for q in questions)
