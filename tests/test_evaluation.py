"""Evaluation: metrics on planted texts, the tone classifier, and the judge flow over HTTP."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import compose_config
from tests.openai_stub import StubOpenAI
from tonetune.config import typed
from tonetune.evaluation import metrics as tm
from tonetune.evaluation.classifier import ToneClassifier
from tonetune.evaluation.judge import combine, judge_fidelity, judge_pairwise, parse_score, parse_verdict
from tonetune.evaluation.plots import length_histogram, metric_bars
from tonetune.llm.openai_api import OpenAIClient
from tonetune.models.embeddings import embed
from tonetune.schemas import PersonaConfig

TWEETS = [
    "Mars by 2030, pack snacks 🚀 #OccupyMars",
    "Tunnels fix traffic, obviously 🕳️ #BoringCompany",
    "My dog runs the company now 🐶 #CEOlife",
    "Coffee is rocket fuel for humans ☕ #Launch",
    "AI will do the dishes first 🤖 #Priorities",
    "Electric everything, even toasters ⚡ #FutureToast",
    "Sleep is a bug, not a feature 😴 #Hardcore",
    "Memes are the real currency 💸 #Doge",
    "Gravity is just a suggestion 🪐 #Physics",
    "Bought the moon, no refunds 🌕 #Oops",
    "Cats secretly run Twitter 🐱 #Truth",
    "Pizza on Mars tastes like victory 🍕 #RedPlanet",
]
NEUTRAL = [
    "The capital of France is Paris, which has been the seat of government for centuries.",
    "Regular exercise improves cardiovascular health and helps maintain a healthy weight.",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "A balanced budget requires tracking income and expenses over a consistent period.",
    "Many historians consider the printing press one of the most influential inventions.",
    "To reset your password, open the settings page and follow the instructions provided.",
    "Water boils at one hundred degrees Celsius at standard atmospheric pressure.",
    "The committee will review the proposal and publish its recommendations next month.",
    "Reading regularly can expand vocabulary and improve concentration over time.",
    "Vaccines train the immune system to recognise specific pathogens more quickly.",
    "The report summarises quarterly revenue, operating costs and projected growth.",
    "Good sleep hygiene includes a consistent schedule and limited screen time at night.",
]


@pytest.fixture
def persona(tmp_path: Path) -> PersonaConfig:
    cfg = compose_config("train", [f"paths.output_dir={tmp_path}", "persona=elon_musk"])
    return typed(PersonaConfig, cfg.persona)


def test_marker_and_length_shares_on_planted_texts(persona) -> None:
    answers = [
        "Going to Mars tomorrow, obviously 🚀 #Mars",
        "Going to Mars tomorrow #Mars",
        "Plain words only here today",
    ]
    hits = tm.marker_hits(answers, persona)
    assert hits["marker/hashtag"].tolist() == [1, 1, 0]
    assert hits["marker/emoji"].tolist() == [1, 0, 0]
    assert hits["marker/all"].tolist() == [1, 0, 0]
    assert hits["length_in_range"].tolist() == [1, 1, 1]
    assert tm.marker_hits(["word " * 60], persona)["length_in_range"].tolist() == [0]
    assert tm.words(["one two", "one two three four"]).tolist() == [2, 4]


def test_health_metrics_on_planted_texts() -> None:
    assert tm.distinct_n(["a b c d"], 2) == 1.0
    assert tm.distinct_n(["a b a b a b"], 2) == pytest.approx(2 / 5)
    assert tm.repeats_itself(["the cat sat on the mat", "go go go go"], 3).tolist() == [0, 1]
    assert tm.stopped(["stop", "length", "stop", "stop"]).tolist() == [1, 0, 1, 1]
    assert tm.empty(["", " ", "x"]).tolist() == [1, 1, 0]
    assert tm.rouge_l(["rockets are cool"], ["rockets are cool"]).tolist() == pytest.approx([1.0])
    assert tm.rouge_l(["totally unrelated"], ["rockets are cool"]).tolist() == [0.0]
    assert tm.same_as_previous(["Same answer!", "New one", ""], ["same  answer", "Old one", ""]).tolist() == [
        1,
        0,
        0,
    ]


def test_relevance_punishes_tone_that_ignores_the_question() -> None:
    questions = [
        "What is your favourite pizza topping?",
        "How do you deal with traffic jams?",
        "Do you like cats or dogs?",
        "What do you think about electric cars?",
    ]
    on_topic = [
        "Pineapple pizza, fight me 🍕 #PizzaWars",
        "I dig tunnels under the traffic jams 🕳️ #Boring",
        "Cats, they already run the internet 🐱 #CatLife",
        "Electric cars are the future, obviously ⚡ #EV",
    ]
    hashtag_spam = ["So true 🚀 #Mars #Winning"] * 4
    q = embed(questions)
    relevant = tm.pairwise_cosine(embed(on_topic), q).mean()
    spam = tm.pairwise_cosine(embed(hashtag_spam), q).mean()
    assert relevant > spam + 0.2


def test_classifier_separates_persona_from_neutral_texts() -> None:
    classifier = ToneClassifier(folds=4, seed=0).fit(TWEETS, NEUTRAL)
    assert classifier.held_out_accuracy >= 0.9
    assert classifier.held_out_size == 24
    new_tweets = ["Launching tacos into orbit tonight 🌮 #SpaceTacos", "Robots will love memes too 🤖 #AI"]
    new_neutral = [
        "The museum opens at nine and closes at five on weekdays.",
        "Interest rates affect the cost of borrowing for households and firms.",
    ]
    assert classifier.predict(embed(new_tweets)).tolist() == [1, 1]
    assert classifier.predict(embed(new_neutral)).tolist() == [0, 0]


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ('{"reasoning": "A is witty", "winner": "A"}', "A"),
        ('```json\n{"winner": "tie"}\n```', "tie"),
        ("Reasoning: B sounds like him.\nWinner: B", "B"),
        ("The better one is B", "B"),
        ("I cannot decide between them.", None),
        ('{"winner": "C"}', None),
    ],
)
def test_verdicts_parse_or_are_invalid(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


def test_scores_parse_from_the_end_of_the_reasoning() -> None:
    assert parse_score("Witty and terse with hashtags.\nScore: 8") == 8
    assert parse_score("Score: 3/10") == 3
    assert parse_score("It scores well overall.") is None
    assert parse_score("Score: 14") is None


def test_order_swap_turns_position_bias_into_a_tie() -> None:
    assert combine("A", "B") == "win"  # candidate first, then second: preferred both times
    assert combine("B", "A") == "loss"
    assert combine("A", "A") == "tie"  # the judge always picks the first answer
    assert combine("tie", "tie") == "tie"
    assert combine(None, "B") == "invalid"


def test_judge_flow_over_http_counts_wins_losses_ties_and_invalid(persona) -> None:
    """Scripted judge: prefers answers with 'ROCKET'; always says A on 'biased' questions;
    answers nonsense on 'broken' ones; fidelity is 9 for 'ROCKET' answers, unreadable on 'broken'."""

    def judge(body: dict) -> str | None:
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        if "two answers" in system:
            a = re.search(r"Answer A: (.*)\n\nAnswer B:", user, re.S).group(1)
            if "broken" in user:
                return "Both are answers."
            if "biased" in user:
                return '{"reasoning": "first is best", "winner": "A"}'
            return json.dumps({"reasoning": "r", "winner": "A" if "ROCKET" in a else "B"})
        if "broken" in user:
            return "What a lovely answer."
        return "Reasoning: fine.\nScore: " + ("9" if "ROCKET" in user.split("Answer:")[-1] else "2")

    server = StubOpenAI(script=judge)
    base_url = server.start()
    try:
        client = OpenAIClient(
            model="judge", base_url=base_url, api_key_required=False, max_tokens_param="max_tokens"
        )
        questions = ["q1 plain?", "q2 plain?", "q3 biased?", "q4 broken?"]
        candidate = ["ROCKET yes", "meh", "ROCKET too", "ROCKET"]
        opponent = ["meh", "ROCKET no", "meh", "meh"]
        result = judge_pairwise(client, persona, questions, candidate, opponent, desc="judge").summary()
        fidelity = judge_fidelity(client, persona, questions, candidate, desc="fidelity")
    finally:
        server.stop()
    counts = {k: result[k] for k in ("win", "loss", "tie", "invalid")}
    assert counts == {"win": 1, "loss": 1, "tie": 1, "invalid": 1}
    assert result["win_rate"] == 0.5  # (1 + 0.5) / 3 valid pairs
    assert result["swap_consistency"] == pytest.approx(2 / 3)  # the 'biased' pair flipped with the order
    assert fidelity == {"fidelity": pytest.approx((9 + 2 + 9) / 3), "fidelity_invalid": 1}
    assert len(server.chat_requests()) == 2 * 4 + 4


def test_plots_render(tmp_path: Path) -> None:
    metrics = {
        "base": {"tone_classifier": 0.1, "marker/all": 0.0},
        "finetuned": {"tone_classifier": 0.95},
        "reference": {"tone_classifier": 0.97, "marker/all": 1.0},
    }
    bars = metric_bars(metrics, ["tone_classifier", "marker/all", "absent"], tmp_path / "m.png")
    lengths = length_histogram({"base": ["a b c"] * 3, "reference": ["a"] * 4}, tmp_path / "l.png")
    for path in (bars, lengths):
        assert path.stat().st_size > 10_000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_run_folder_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        ["tonetune-evaluate", f"run_dir={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'e'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"tonetune-evaluate: error: run_dir={tmp_path / 'nope'}: no config.yaml; "
        "is this a tonetune-train run folder?"
    ]


def test_classifier_of_no_answers_is_empty() -> None:
    classifier = ToneClassifier().fit(TWEETS, NEUTRAL)
    assert classifier.predict(np.zeros((0, 384))).shape == (0,)
