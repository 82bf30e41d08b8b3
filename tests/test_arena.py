"""The arena in a real browser (Debian's Chromium driven by Playwright), votes as data, many personas."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from safetensors import safe_open

from tests.conftest import compose_config
from tests.helpers import free_port
from tonetune.config import REPO_ROOT
from tonetune.data.preference import load_pairs
from tonetune.training.train import train

ARTEFACTS = Path(os.environ.get("TONETUNE_TEST_ARTEFACTS", REPO_ROOT / "outputs" / "test-artefacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def tiny_run(root: Path, persona: str, seed: int) -> Path:
    cfg = compose_config(
        "train",
        [
            "base_model=tiny",
            "data=example",
            "logger=none",
            "trainer.max_epochs=2",
            "optimizer.lr=1e-2",
            f"persona={persona}",
            f"seed={seed}",
            "trainer.enable_progress_bar=false",
            f"paths.output_dir={root}",
        ],
    )
    train(cfg)
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    return [
        tiny_run(tmp_path_factory.mktemp("elon"), "elon_musk", 1),
        tiny_run(tmp_path_factory.mktemp("yoda"), "yoda", 2),
    ]


def start_arena(runs: list[Path], tmp: Path, votes: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (tmp / f"arena-{port}.log").open("w")
    process = subprocess.Popen(
        [
            "tonetune-arena",
            f"run_dir=[{','.join(map(str, runs))}]",
            "contestants=[elon_musk,yoda]",
            f"port={port}",
            f"votes={votes}",
            "sampling.max_new_tokens=12",
            f"hydra.run.dir={tmp / f'arena-{port}'}",
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        assert process.poll() is None and time.time() < deadline, (tmp / f"arena-{port}.log").read_text()[
            -3000:
        ]
        try:
            if httpx.get(url).status_code == 200:
                return process, url
        except httpx.ConnectError:
            time.sleep(0.5)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Chromium is missing: scripts/setup.sh installs Debian's chromium package"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


def vote_in_page(page, outcome: str = "a") -> tuple[str, str, str]:
    """Ask a drawn question, wait for both answers, vote; (answer A, answer B, the reveal)."""
    page.set_default_timeout(120_000)  # generous: a busy 2-core machine answers slowly
    page.locator("#draw").click()
    page.wait_for_function("document.querySelector('#question textarea').value.length > 0")
    page.locator("#ask").click()
    page.wait_for_function("!document.querySelector('#vote-a').disabled")
    answers = (
        page.locator("#answer-a textarea").input_value(),
        page.locator("#answer-b textarea").input_value(),
    )
    page.locator(f"#vote-{outcome}").click()
    page.wait_for_function("document.querySelector('#reveal').innerText.includes('Model A was')")
    return *answers, page.locator("#reveal").inner_text()


def test_a_vote_in_the_browser_is_data_and_moves_the_tally(runs, tmp_path, browser) -> None:
    votes = tmp_path / "votes.jsonl"
    process, url = start_arena(runs, tmp_path, votes)
    try:
        page = browser.new_page()
        page.goto(url)
        answer_a, answer_b, reveal = vote_in_page(page, "a")
        assert answer_a.strip() and answer_b.strip()  # two answers appeared
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTEFACTS / "arena.png"), full_page=True)
        (row,) = [json.loads(line) for line in votes.read_text().splitlines()]
        a_name = reveal.split("Model A was ")[1].split(",")[0].strip()
        assert row["chosen_model"] == a_name and row["chosen"][0]["content"] == answer_a.strip()
        assert row["rejected"][0]["content"] == answer_b.strip()
        tally = [cell.strip() for cell in page.locator("#tally").inner_text().split("\n") if cell.strip()]
        assert tally[tally.index("elon_musk vs yoda") + 1] == "1"  # one vote counted on the page
        assert json.loads((votes.parent / "tally.json").read_text())["votes"] == 1
        (pair,) = load_pairs(str(votes))["train"]  # tonetune-train objective=dpo reads the file as it is
        assert pair["chosen"] == answer_a.strip()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_killing_the_arena_loses_no_vote(runs, tmp_path, browser) -> None:
    votes = tmp_path / "votes.jsonl"
    process, url = start_arena(runs, tmp_path, votes)
    page = browser.new_page()
    page.goto(url)
    cast = [vote_in_page(page, outcome) for outcome in ("a", "b", "tie")]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    rows = [json.loads(line) for line in votes.read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["preference", "preference", "tie"] and len(cast) == 3
    assert len(load_pairs(str(votes))["train"]) == 2  # the tie holds no preference
    again, url = start_arena(runs, tmp_path, votes)
    try:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#elo")
        tally = [cell.strip() for cell in page.locator("#tally").inner_text().split("\n") if cell.strip()]
        assert tally[tally.index("elon_musk vs yoda") + 1] == "3"  # the votes of before the kill, counted
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)


def test_the_adapter_folder_carries_what_vllms_lora_loader_reads(runs) -> None:
    folder = runs[0] / "model"
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["r"] == 16 and config["lora_alpha"] == 32 and config["peft_type"] == "LORA"
    assert set(config["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    with safe_open(folder / "adapter_model.safetensors", "pt") as weights:
        names = list(weights.keys())
    assert names and all(
        n.startswith("base_model.model.") and ("lora_A" in n or "lora_B" in n) for n in names
    )
