"""An endpoint contestant decodes with exactly the settings of a local one (main set, pressure, multi-turn).

tonetune's own server serves the tiny run on 127.0.0.1; the same run answers in process. Greedy
with the same limits and penalty, every answer of the served model must equal the in-process one.
"""

from __future__ import annotations

import json

from tests.conftest import compose_config
from tests.test_serving import start_server, stop, tiny_run  # noqa: F401 (the run is a fixture)
from tonetune.evaluation.contestants import EndpointContestant
from tonetune.evaluation.evaluate import evaluate
from tonetune.generation.sampling import Sampling
from tonetune.llm.openai_api import OpenAIClient


def test_an_endpoint_contestant_answers_like_the_same_model_in_process(tiny_run, tmp_path) -> None:  # noqa: F811
    process, url = start_server(
        tiny_run, tmp_path, {"OMP_NUM_THREADS": "1"}, "merge_adapter=false", "system_prompt=none"
    )
    try:
        cfg = compose_config(
            "evaluate",
            [
                f"run_dir={tiny_run}",
                "+reference=openai_compatible",
                f"evaluation.contestants.large_prompted.endpoint.base_url={url}/v1",
                "evaluation.contestants.large_prompted.endpoint.model=elon_musk",
                "evaluation.contestants.large_prompted.system_prompt=false",
                "evaluation.contestants.base_prompted=null",
                "evaluation.questions.limit=3",
                # three budgets, so that one used for every section shows
                "evaluation.sampling.max_new_tokens=12",
                "evaluation.pressure.questions=2",
                "evaluation.pressure.max_new_tokens=5",
                "evaluation.multi_turn.conversations=2",
                "evaluation.multi_turn.turns=2",
                "evaluation.multi_turn.max_new_tokens=8",
                "evaluation.sampling.repetition_penalty=3.0",
                "evaluation.capability.tasks=[]",
                "evaluation.classifier.max_examples=10",
                "evaluation.classifier.folds=2",
                "logger=none",
                f"paths.output_dir={tmp_path / 'eval'}",
                f"paths.response_cache={tmp_path / 'responses.sqlite'}",
            ],
        )
        _, objects = evaluate(cfg)
        streamed = _streamed(url, objects["sets"][0].questions.questions[0])
    finally:
        stop(process)
    # the arena's way: an endpoint contestant streams through the LLM client, penalty included
    assert streamed == objects["answers"]["finetuned"].texts[0]
    answers = objects["answers"]
    assert answers["large_prompted"].texts == answers["finetuned"].texts
    assert answers["large_prompted"].finish_reasons == answers["finetuned"].finish_reasons
    folder = tmp_path / "eval"
    pressure = [json.loads(line) for line in (folder / "pressure_answers.jsonl").read_text().splitlines()]
    assert pressure and all(row["large_prompted"] == row["finetuned"] for row in pressure)
    rows = [json.loads(line) for line in (folder / "multi_turn.jsonl").read_text().splitlines()]
    by_contestant = {
        name: [r["messages"] for r in rows if r["contestant"] == name]
        for name in ("large_prompted", "finetuned")
    }
    assert by_contestant["large_prompted"] and by_contestant["large_prompted"] == by_contestant["finetuned"]


def _streamed(url: str, question: str) -> str:
    client = OpenAIClient(
        "elon_musk", base_url=f"{url}/v1", api_key_required=False, max_tokens_param="max_tokens"
    )
    sampling = Sampling(max_new_tokens=12, repetition_penalty=3.0)
    contestant = EndpointContestant("served", client)
    return "".join(contestant.stream([{"role": "user", "content": question}], sampling)).strip()
