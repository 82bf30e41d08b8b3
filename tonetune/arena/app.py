"""The arena page (Gradio): ask, read two anonymous answers side by side, vote, see who was who.

Pairs are drawn at random and shown in random order; names appear only after the vote. Every vote
is written to ``votes.jsonl`` before the page updates; the tally (per pair, with a 95% interval)
and the Elo ranking are shown and saved to ``tally.json``.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tonetune.arena.contestants import ArenaContestant
from tonetune.arena.votes import VoteLog, elo, pair_tally, vote_row

EMPTY = "(an empty answer: the model ended its turn at once)"


class Arena:
    """The arena's state: contestants, questions to draw from, the vote log, and the random source."""

    def __init__(
        self, contestants: list[ArenaContestant], questions: list[str], votes: Path, seed: int = 0
    ) -> None:
        if len(contestants) < 2:
            from tonetune.errors import ConfigError

            raise ConfigError("the arena needs at least two contestants")
        self.contestants = {c.name: c for c in contestants}
        self.questions = questions
        self.log = VoteLog(votes)
        self.tally_path = votes.with_name("tally.json")
        self.rng = random.Random(seed)

    def draw(self) -> str:
        """A question from the list (empty when there is none)."""
        return self.rng.choice(self.questions) if self.questions else ""

    def ask(self, question: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Stream two anonymous answers: (text A, text B, the round's state)."""
        names = self.rng.sample(list(self.contestants), 2)
        texts = ["", ""]
        round_state = {"round": uuid.uuid4().hex, "question": question, "names": names, "answers": texts}
        messages = [{"role": "user", "content": question}]
        for side, name in enumerate(names):
            for delta in self.contestants[name].stream(messages):
                texts[side] += delta
                yield _shown(texts[0]), _shown(texts[1], side < 1), round_state
        texts[:] = [t.strip() for t in texts]
        round_state["complete"] = True
        yield _shown(texts[0]), _shown(texts[1]), round_state

    def vote(self, outcome: str, round_state: dict[str, Any]) -> str:
        """Record the round's one vote; return who was who (or why nothing was recorded)."""
        refusal = self._refusal(round_state)
        if refusal:
            return refusal
        row = vote_row(
            round_state["question"],
            round_state["names"],
            round_state["answers"],
            outcome,
            round_state["round"],
        )
        self.log.append(row)
        self._save_tally()
        a, b = round_state["names"]
        verdict = {
            "A": f"You preferred **{a}**",
            "B": f"You preferred **{b}**",
            "tie": "A tie",
            "both_bad": "Both bad",
        }[outcome]
        return f"{verdict}. Model A was **{a}**, model B was **{b}**."

    def _refusal(self, round_state: dict[str, Any] | None) -> str | None:
        """Why this vote is not recorded: no round asked yet, answers still coming, or already voted."""
        if not round_state or not round_state.get("round"):
            return "Ask a question first: there are no answers to vote on yet."
        if not round_state.get("complete"):
            return "Wait for both answers before voting."
        if round_state["round"] in self.log.rounds:
            return "This round already has its vote; ask another question to vote again."
        return None

    def tally(self) -> tuple[list[list[Any]], list[list[Any]]]:
        """(per-pair rows, Elo rows) for the page's tables."""
        pairs = [
            [
                p["pair"],
                p["votes"],
                p["wins"],
                p["ties"],
                p["both_bad"],
                f"{p['first_wins']:.2f} [{p['low']:.2f}, {p['high']:.2f}]"
                if p["votes"] - p["ties"] - p["both_bad"]
                else "n/a",
            ]
            for p in pair_tally(self.log.rows, list(self.contestants))
        ]
        ranking = [
            [i + 1, name, round(rating)]
            for i, (name, rating) in enumerate(elo(self.log.rows, list(self.contestants)).items())
        ]
        return pairs, ranking

    def _save_tally(self) -> None:
        data = {
            "pairs": pair_tally(self.log.rows, list(self.contestants)),
            "elo": elo(self.log.rows, list(self.contestants)),
            "votes": len(self.log.rows),
        }
        staging = self.tally_path.with_suffix(".tmp")
        staging.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(staging, self.tally_path)


def _shown(text: str, pending: bool = False) -> str:
    if pending:
        return text
    return text if text.strip() else EMPTY


def tally_tables(arena: Arena) -> tuple[Any, Any]:
    """The per-pair tally and the Elo ranking, as read-only tables."""
    import gradio as gr

    pairs, ranking = arena.tally()
    tally = gr.Dataframe(
        value=pairs,
        headers=["pair", "votes", "wins", "ties", "both bad", "first wins [95%]"],
        label="Tally per pair",
        elem_id="tally",
        interactive=False,
    )
    elo_table = gr.Dataframe(
        value=ranking,
        headers=["rank", "contestant", "Elo"],
        label="Ranking",
        elem_id="elo",
        interactive=False,
    )
    return tally, elo_table


VOTES = (("A", "A is better"), ("B", "B is better"), ("tie", "Tie"), ("both_bad", "Both bad"))


def vote_buttons() -> dict[str, Any]:
    """One disabled button per outcome, keyed by the outcome it records."""
    import gradio as gr

    return {
        outcome: gr.Button(label, elem_id=f"vote-{outcome.lower().replace('_', '-')}", interactive=False)
        for outcome, label in VOTES
    }


def build_page(arena: Arena, title: str) -> Any:
    """The Gradio Blocks page wired to ``arena``."""
    import gradio as gr

    with gr.Blocks(title="tonetune arena") as page:
        gr.Markdown(
            f"# tonetune arena: {title}\n"
            "Ask a question, read both answers, vote. Names appear after the vote."
        )
        round_state = gr.State({})
        with gr.Row():
            question = gr.Textbox(label="Question", elem_id="question", scale=4)
            draw = gr.Button("Draw a question", elem_id="draw", scale=1)
            ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1)
        with gr.Row():
            answer_a = gr.Textbox(label="Model A", elem_id="answer-a", lines=6, interactive=False)
            answer_b = gr.Textbox(label="Model B", elem_id="answer-b", lines=6, interactive=False)
        with gr.Row():
            buttons = vote_buttons()
        reveal = gr.Markdown(elem_id="reveal")
        tally, elo_table = tally_tables(arena)

        def run(q: str) -> Iterator[tuple]:
            for a, b, state in arena.ask(q):
                yield (a, b, state, *([gr.Button(interactive=False)] * 4), "")
            yield (a, b, state, *([gr.Button(interactive=True)] * 4), "")

        draw.click(arena.draw, outputs=question)
        outputs = [answer_a, answer_b, round_state, *buttons.values(), reveal]
        ask.click(run, inputs=question, outputs=outputs)
        question.submit(run, inputs=question, outputs=outputs)
        for outcome, button in buttons.items():
            button.click(
                lambda state, o=outcome: (
                    arena.vote(o, state),
                    *arena.tally(),
                    *([gr.Button(interactive=False)] * 4),
                ),
                inputs=round_state,
                outputs=[reveal, tally, elo_table, *buttons.values()],
            )
    return page
