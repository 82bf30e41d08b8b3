"""The dataset card (README.md) that travels with a synthesized dataset."""

from __future__ import annotations

from typing import Any

from tonetune.models import as_dict


def render_card(persona: Any, question_set: Any, report: dict[str, Any]) -> str:
    """Markdown: persona, teacher, prompts, counts, filters, tokens and cost."""
    card, qs = as_dict(persona), as_dict(question_set)
    q, a, usage = report["questions"], report["answers"], report["usage"]
    lines = [
        f"# {card['display_name']}: a tonetune persona dataset",
        "",
        f"{card['description']}",
        "",
        f"- Persona: `{card['name']}`; system prompt: {card['system_prompt']!r}",
        f"- Teacher: `{report['teacher']['model']}` ({report['teacher']['type']})",
        f"- Question set: `{qs['name']}`, {qs['questions_per_prompt']} questions per prompt",
        "",
        "## Question prompts",
        "",
        *[
            f"- **{p['category']}**: {p['prompt'].format(n=qs['questions_per_prompt'])}"
            for p in qs["prompts"]
        ],
        "",
        "## Counts",
        "",
        "| stage | count |",
        "| --- | ---: |",
        f"| questions generated | {q['generated']} |",
        f"| questions from files | {q['from_files']} |",
        f"| unparseable question lists | {q['unparseable_lists']} |",
        f"| exact duplicates removed | {q['exact_duplicates']} |",
        f"| near-duplicates removed (cosine >= {q['near_duplicate_threshold']}) | {q['near_duplicates']} |",
        f"| questions kept | {q['kept']} |",
        f"| answers requested | {a['requested']} |",
        f"| answers kept | {a['kept']} |",
        *[f"| rejected: {reason} | {n} |" for reason, n in sorted(a["rejected"].items())],
        f"| questions without an answer | {a['questions_without_answer']} |",
        *[f"| {split} rows | {n} |" for split, n in report["splits"].items()],
        "",
        "## Tokens and cost",
        "",
        f"- Requests sent this run: {usage['requests_sent']}; answered from the cache: {usage['cache_hits']}",
        f"- Tokens this run: {usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion",
        f"- Estimated cost this run: ${report['cost']['spent_usd']:.4f}; "
        f"with cached answers: ${report['cost']['total_usd']:.4f}",
        "",
        "Files: a `datasets` DatasetDict (train / validation / test, split by question and stratified by "
        "category), `openai_<split>.jsonl` in OpenAI fine-tuning format, and this card.",
    ]
    return "\n".join(lines) + "\n"
