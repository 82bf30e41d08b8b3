"""No wasted teacher calls (issue 20, item 3): several candidates per round, the first passing one kept."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.openai_stub import StubOpenAI
from tests.test_synthesis import run_synthesize
from tonetune.llm.client import LLMClient, OnResult
from tonetune.llm.requests import ChatRequest, ChatResult
from tonetune.synthesis.answers import ask_until_kept


class ScriptedTeacher(LLMClient):
    """Answers ``(job, seed)`` from a table ('ok...' passes, anything else fails); records each round."""

    model = "scripted"

    def __init__(self, table: dict[tuple[int, int], str]) -> None:
        super().__init__()
        self.table = table
        self.rounds: list[list[tuple[int, int]]] = []

    def _complete_missing(self, requests: list[ChatRequest], store: OnResult, desc: str) -> None:
        asked = [(int(r.chat[0]["content"]), r.seed) for r in requests]
        self.rounds.append(asked)
        for i, (job, seed) in enumerate(asked):
            store(i, ChatResult(self.table.get((job, seed), "bad"), completion_tokens=10))


def ask(teacher: ScriptedTeacher, jobs: int, max_attempts: int, candidates: int):
    return ask_until_kept(
        teacher,
        jobs,
        lambda job, attempt: ChatRequest.of([{"role": "user", "content": str(job)}], seed=attempt),
        lambda _job, text, _finish: None if text.startswith("ok") else "nope",
        max_attempts,
        candidates,
        "test",
    )


def test_first_passing_candidate_in_seed_order_and_retries_only_for_the_rest() -> None:
    teacher = ScriptedTeacher(
        {
            (0, 1): "ok 0/1",  # seed 0 fails: seed 1 kept, seed 2 (also passing) spare
            (0, 2): "ok 0/2",
            (1, 0): "ok 1/0",  # the first candidate passes
            (2, 4): "ok 2/4",  # nothing passes in round one: round two's second candidate
        }
    )
    asked = ask(teacher, jobs=4, max_attempts=6, candidates=3)  # job 3 never passes
    assert teacher.rounds == [
        [(j, s) for j in range(4) for s in range(3)],  # every job's 3 candidates in one call
        [(j, s) for j in (2, 3) for s in range(3, 6)],  # then only the jobs without a passing one
    ]
    assert {job: kept for job, kept in asked.kept.items()} == {
        0: ("ok 0/1", 1),
        1: ("ok 1/0", 1),
        2: ("ok 2/4", 2),
    }
    assert asked.rejected == {0: ["bad"], 2: ["bad"] * 4, 3: ["bad"] * 6}
    assert Counter(job for job, _ in asked.reasons) == {0: 1, 2: 4, 3: 6}
    assert (asked.requests, asked.rounds, asked.spare) == (18, 2, 4)  # spares: (0, 2), (1, 1), (1, 2), (2, 5)
    cost = asked.cost(3)
    assert cost["requests_per_kept"] == 6.0 and cost["rounds_per_kept"] == round(4 / 3, 3)
    assert cost["completion_tokens_per_kept"] == 60.0


def test_one_candidate_is_the_old_one_round_after_another() -> None:
    teacher = ScriptedTeacher({(0, 2): "ok"})
    asked = ask(teacher, jobs=1, max_attempts=3, candidates=1)
    assert teacher.rounds == [[(0, 0)], [(0, 1)], [(0, 2)]] and asked.kept == {0: ("ok", 3)}
    teacher = ScriptedTeacher({})
    asked = ask(teacher, jobs=1, max_attempts=3, candidates=2)  # 2 then the last 1: 3 in all
    assert teacher.rounds == [[(0, 0), (0, 1)], [(0, 2)]] and asked.kept == {}


def test_candidates_in_synthesis_counted_in_the_card(tmp_path: Path) -> None:
    server = StubOpenAI()
    base_url = server.start()
    questions = tmp_path / "mine.txt"
    questions.write_text(
        "What is your shy opinion on Mondays?\nWhat is your dream car?\nWill you refuse this one?\n"
    )
    try:
        report, objects = run_synthesize(
            base_url,
            tmp_path,
            "questions.source=files",
            f"questions.files=[{questions}]",
            "answers.per_question=1",
            "answers.candidates=2",
            "preferences.enabled=false",
            "contrast.enabled=false",
        )
    finally:
        server.stop()
    kept = {row["question"]: row["answer"] for row in objects["rows"]}
    assert "(take 1)" in kept["What is your shy opinion on Mondays?"]  # seed 0 is shy: seed 1 kept
    assert "(take 0)" in kept["What is your dream car?"]  # both pass: the first seed
    assert "Will you refuse this one?" not in kept
    answers = report["answers"]
    assert answers["rejected"] == {"missing_hashtag": 1, "refusal": 3}  # refused: 2, then the 3rd
    assert len(server.chat_requests()) == answers["requested"] == 2 + 2 + 2 + 1
    assert (answers["rounds"], answers["spare_candidates"], answers["requests_per_kept"]) == (2, 1, 3.5)
    card = (tmp_path / "data" / "elon_musk" / "README.md").read_text()
    assert "## Cost per kept answer" in card and "Candidates per round: 2; rounds: 2 (requests: 6, 1)" in card
    assert "3.5 requests, 1.0 decode rounds" in card
