"""Issue 19, items 10-14: secrets in endpoint URLs, linked data folders, oversized and foreign-language
replies, one vote per arena round, export folders that keep the user's files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from datasets import load_from_disk

from tests.conftest import FAST_TRAIN, compose_config
from tests.openai_stub import StubOpenAI
from tests.test_synthesis import synth_overrides
from tonetune.arena.app import Arena
from tonetune.arena.contestants import ArenaContestant
from tonetune.errors import DataError
from tonetune.schemas.commands import GGUFSettings
from tonetune.serving.export import export_run
from tonetune.synthesis.synthesize import synthesize
from tonetune.training.train import train

USER_FILES = {
    "README.md": "my own notes on this model\n",
    "Modelfile": "FROM ./mine.gguf\n",
    "notes.txt": "do not lose me\n",
    "model-00001-of-00002.safetensors": "a shard of my own model\n",
}


def plant(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def unchanged(folder: Path, files: dict[str, str]) -> bool:
    return all((folder / name).read_text() == text for name, text in files.items())


# -- 14: export folders ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_run")
    _, objects = train(compose_config("train", [*FAST_TRAIN, "debug=fdr", f"paths.output_dir={root}"]))
    return Path(objects["run_dir"])


def test_export_refuses_a_users_folder_and_replaces_only_its_own_files(tiny_run, tmp_path) -> None:
    settings = GGUFSettings(dtype="f32")
    theirs = tmp_path / "theirs"
    inside = {f"hf/{name}": text for name, text in USER_FILES.items()} | {"gguf/Modelfile": "FROM ./x\n"}
    plant(theirs, USER_FILES | inside)
    with pytest.raises(DataError, match=r"out_dir=.*not written by tonetune-export"):
        export_run(tiny_run, theirs, ["Hi?"], 4, settings)
    assert unchanged(theirs, USER_FILES | inside) and sum(p.is_file() for p in theirs.rglob("*")) == 9

    ours = tmp_path / "ours"
    export_run(tiny_run, ours, ["Hi?"], 4, settings)
    plant(ours, USER_FILES)  # the user's files beside tonetune's
    with pytest.raises(DataError, match="set overwrite=true"):
        export_run(tiny_run, ours, ["Hi?"], 4, settings)
    result = export_run(tiny_run, ours, ["Hi?"], 4, settings, overwrite=True)
    assert unchanged(ours, USER_FILES)
    assert Path(result["gguf"]).is_file() and (ours / "hf" / "config.json").is_file()
    assert json.loads((ours / "export.json").read_text())["hf_dir"] == str(ours / "hf")

    plant(ours, {"hf/notes.txt": "mine, inside tonetune's folder\n"})
    with pytest.raises(DataError, match=r"hf/notes\.txt there is not tonetune's"):
        export_run(tiny_run, ours, ["Hi?"], 4, settings, overwrite=True)
    assert unchanged(ours, {"hf/notes.txt": "mine, inside tonetune's folder\n", **USER_FILES})
    assert not list(tmp_path.glob(".*.tmp"))  # no stray staging folder


# -- 10: credentials in teacher.base_url ----------------------------------------------------------


@pytest.fixture
def stub():
    server = StubOpenAI()
    server.base_url = server.start()
    yield server
    server.stop()


def write_questions(root: Path, *questions: str) -> Path:
    path = root / "mine.txt"
    path.write_text("\n".join(questions) + "\n")
    return path


def small_synthesis(base_url: str, root: Path, questions: Path, *extra: str) -> list[str]:
    """Overrides of a quick synthesis: the user's questions, one answer each, no preference split."""
    return [
        *synth_overrides(base_url, root, "questions.source=files", f"questions.files=[{questions}]"),
        "answers.per_question=1",
        "preferences.enabled=false",
        "contrast.enabled=false",  # on by default for API teachers (issue 18): these tests count requests
        *extra,
    ]


def test_a_password_in_base_url_reaches_no_file_and_no_cache_key(stub, tmp_path) -> None:
    secret = "SENTINEL-pw-4b1d"
    port = stub.base_url.rsplit(":", 1)[1].split("/")[0]
    questions = write_questions(tmp_path, "What is your dream car?", "How do rockets land?")
    first = f"http://tonetune:{secret}@localhost:{port}/v1"
    result = subprocess.run(
        [
            "tonetune-synthesize",
            *small_synthesis(first, tmp_path, questions),
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sent = len(stub.chat_requests())
    assert sent == 2
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "responses.sqlite" for p in written) and any(
        p.name == "overrides.yaml" for p in written
    )
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["teacher"]["base_url"] == f"http://***@localhost:{port}/v1"
    assert secret not in result.stdout + result.stderr

    rotated = f"http://tonetune:rotated@127.0.0.1:{port}/v1/"  # new password, loopback spelled otherwise
    cfg = compose_config(
        "synthesize",
        [
            *small_synthesis(rotated, tmp_path, questions, "overwrite=true"),
            f"paths.output_dir={tmp_path / 'run2'}",
        ],
    )
    report, _ = synthesize(cfg)
    assert len(stub.chat_requests()) == sent and report["usage"]["cache_hits"] == 2  # nothing resent


# -- 13: one vote per arena round; a torn or foreign votes file -----------------------------------


def arena(votes: Path) -> Arena:
    def speaker(word: str):
        return lambda messages: iter([f"{word} says: ", messages[-1]["content"]])

    contestants = [ArenaContestant("elon_musk", speaker("elon")), ArenaContestant("yoda", speaker("yoda"))]
    return Arena(contestants, ["Why Mars?"], votes)


def test_an_arena_round_takes_one_vote_and_the_votes_file_survives_a_torn_line(tmp_path) -> None:
    votes = tmp_path / "votes.jsonl"
    first = arena(votes)
    assert first.vote("A", {}) == "Ask a question first: there are no answers to vote on yet."
    *_, (_, _, state) = first.ask("Why Mars?")
    replies = [first.vote("A", state) for _ in range(20)]  # a script calling the vote endpoint
    assert replies[0].startswith("You preferred") and set(replies[1:]) == {
        "This round already has its vote; ask another question to vote again."
    }
    assert len(votes.read_text().splitlines()) == 1 and first.tally()[0][0][1] == 1

    with votes.open("a") as handle:
        handle.write('{"prompt": [{"role": "user", "con')  # a crash mid-write
    again = arena(votes)
    assert len(again.log.rows) == 1 and again.log.torn.startswith('{"prompt"')
    assert (tmp_path / "votes.jsonl.torn").read_text().startswith('{"prompt"')
    assert again.vote("B", state).startswith("This round already")  # known across the restart
    *_, (_, _, state) = again.ask("Why Mars?")
    again.vote("tie", state)
    assert [json.loads(line)["outcome"] for line in votes.read_text().splitlines()] == ["preference", "tie"]

    trl = tmp_path / "pairs.jsonl"
    trl.write_text(json.dumps({"prompt": "Why?", "chosen": "Mars.", "rejected": "Dunno."}) + "\n")
    with pytest.raises(DataError, match=r"pairs\.jsonl: line 1 is not an arena vote \(no chosen_model"):
        arena(trl)


# -- 11: data_dir that is a symbolic link ---------------------------------------------------------


def test_a_linked_data_dir_is_written_through_and_a_dangling_link_refused_at_once(stub, tmp_path) -> None:
    questions = write_questions(tmp_path, "What is your dream car?", "How do rockets land?")
    link = tmp_path / "data" / "elon_musk"  # the data_dir of synth_overrides
    link.parent.mkdir()
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # nothing there yet
    cfg = compose_config(
        "synthesize",
        [*small_synthesis(stub.base_url, tmp_path, questions), f"paths.output_dir={tmp_path / 'run'}"],
    )
    with pytest.raises(
        DataError, match=r"data_dir=.*elon_musk: is a symbolic link to .*elsewhere, which is nothing"
    ):
        synthesize(cfg)
    assert stub.chat_requests() == []  # refused before the first request

    (tmp_path / "elsewhere").mkdir()
    synthesize(cfg)
    assert link.is_symlink() and load_from_disk(str(link))["train"].num_rows >= 1
    assert (tmp_path / "elsewhere" / ".tonetune-dataset.json").is_file()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["elon_musk"]  # no stray staging folder
    assert not list(tmp_path.glob(".*.tmp"))


# -- 12: oversized replies, answers in another language -------------------------------------------

FRENCH = "Honnêtement, Mars c'est facile une fois qu'on y est, les fusées sont l'avenir 🚀 #Mars"


def test_oversized_replies_are_bounded_and_foreign_language_answers_filtered(tmp_path) -> None:
    def script(body: dict) -> str | None:
        question = body["messages"][-1]["content"]
        if "rockets" in question:
            return "rockets " * 600_000 + "🚀 #Mars"  # 4.8 MB
        if "France" in question:
            return FRENCH
        return None

    server = StubOpenAI(script=script)
    base_url = server.start()
    questions = write_questions(
        tmp_path, "What is your dream car?", "How do rockets land?", "Do you like France?"
    )
    try:
        cfg = compose_config(
            "synthesize",
            [
                *small_synthesis(base_url, tmp_path, questions, "teacher.max_reply_chars=5000"),
                f"paths.output_dir={tmp_path / 'run'}",
            ],
        )
        report, objects = synthesize(cfg)
    finally:
        server.stop()
    assert report["answers"]["rejected"] == {"truncated": 3, "language": 3}  # 3 attempts each
    assert {row["question"] for row in objects["rows"]} == {"What is your dream car?"}
    assert sum(p.stat().st_size for p in (tmp_path / "cache").iterdir()) < 1_000_000  # not 3 x 4.8 MB
    card = (tmp_path / "data" / "elon_musk" / "README.md").read_text()
    assert "| rejected: language | 3 |" in card and "| rejected: truncated | 3 |" in card
