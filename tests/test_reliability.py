"""Bad input, faults and interruptions: one clear line, no code run, nothing lost, a usable run saved.

Each case is what a user did (docs/RELIABILITY.md lists them with their commands).
"""

from __future__ import annotations

import http.server
import json
import os
import resource
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import FAST_TRAIN
from tests.helpers import error_lines, free_port, run_cli
from tonetune.config import REPO_ROOT
from tonetune.data.loading import load_conversations
from tonetune.errors import DataError
from tonetune.models.runs import load_run_model, read_run
from tonetune.training.train import train

TRAIN = ["tonetune-train", *FAST_TRAIN]
WITH_TEST_HELPERS = {"PYTHONPATH": str(REPO_ROOT)}


def one_line(result, prefix: str) -> str:
    """The single error line a command printed (and nothing that looks like a traceback)."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = error_lines(result)
    assert line.startswith(f"{prefix}: error: ")
    return line


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny LoRA run with a mid-epoch last.ckpt (every step checkpointed)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    result = run_cli(*TRAIN, "callbacks.last_checkpoint.every_n_train_steps=1", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run


# -- checkpoints: no code, local files, fitting shapes ------------------------------------------


class Payload:
    """Unpickling this runs a shell command (what a crafted checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def crafted(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload(marker)}, path)
    return path, marker


def test_a_crafted_checkpoint_from_a_url_runs_no_code(crafted, tmp_path) -> None:
    path, marker = crafted
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(path.parent))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
    try:
        result = run_cli(*TRAIN, f"ckpt_path={url}", f"hydra.run.dir={tmp_path / 'run'}")
    finally:
        server.shutdown()
    assert "only local checkpoint files" in one_line(result, "tonetune-train")
    assert not marker.exists()


def test_a_crafted_local_checkpoint_runs_no_code(crafted, tmp_path) -> None:
    path, marker = crafted
    result = run_cli(*TRAIN, f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert "refused: it holds Python objects besides weights" in one_line(result, "tonetune-train")
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated"])
def test_a_missing_or_damaged_checkpoint_is_one_line(trained, tmp_path, damage) -> None:
    path = tmp_path / "last.ckpt"
    if damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "truncated":
        whole = (trained / "checkpoints" / "last.ckpt").read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    line = one_line(
        run_cli(*TRAIN, f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'run'}"), "tonetune-train"
    )
    assert f"ckpt_path={path}" in line
    assert ("no such file" if damage == "missing" else "not a readable checkpoint") in line


def test_resuming_with_another_lora_rank_names_the_option(trained, tmp_path) -> None:
    checkpoint = trained / "checkpoints" / "last.ckpt"
    result = run_cli(*TRAIN, "adapter.r=4", f"ckpt_path={checkpoint}", f"hydra.run.dir={tmp_path / 'run'}")
    line = one_line(result, "tonetune-train")
    assert "lora_A" in line and "adapter.r" in line


# -- training that used to fail late or save nothing ---------------------------------------------


def usable(run_dir: Path) -> None:
    """A run folder whose model/ loads and answers."""
    from tonetune.generation.engine import Engine

    model, tokenizer = load_run_model(read_run(run_dir))
    assert (
        Engine(model, tokenizer).chat([[{"role": "user", "content": "Hi?"}]], progress=False)[0].finish_reason
    )


def test_max_steps_shorter_than_an_epoch_trains_and_saves(tmp_path) -> None:
    result = run_cli(*TRAIN, "trainer.max_steps=5", f"hydra.run.dir={tmp_path}")  # no `+` needed
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["train/global_step"] == 5
    usable(tmp_path)


def test_resume_from_a_checkpoint_written_on_an_epochs_last_batch(make_train_cfg, tmp_path) -> None:
    crashed = tmp_path / "crashed"
    result = run_cli(
        *TRAIN,
        "trainer.max_epochs=2",
        "callbacks.last_checkpoint.every_n_train_steps=6",  # 6 batches an epoch
        "+callbacks.kill._target_=tests.helpers.KillAtValidation",
        f"hydra.run.dir={crashed}",
        env=WITH_TEST_HELPERS,
    )
    assert result.returncode == -signal.SIGKILL
    checkpoint = torch.load(crashed / "checkpoints" / "last.ckpt", weights_only=True)
    assert (
        checkpoint["global_step"] == 6 and checkpoint["epoch"] == 0
    )  # the epoch's last batch, no validation
    metrics, objects = train(
        make_train_cfg("trainer.max_epochs=2", f"ckpt_path={crashed / 'checkpoints' / 'last.ckpt'}")
    )
    assert metrics["train/global_step"] == 12
    usable(Path(objects["run_dir"]))


def test_resume_with_another_batch_size(trained, make_train_cfg) -> None:
    checkpoint = trained / "checkpoints" / "last.ckpt"
    metrics, objects = train(
        make_train_cfg("data.batch_size=16", "trainer.max_epochs=2", f"ckpt_path={checkpoint}")
    )
    assert metrics["train/global_step"] > 6
    usable(Path(objects["run_dir"]))


def test_last_checkpoint_is_refreshed_at_every_epochs_end(make_train_cfg) -> None:
    metrics, objects = train(
        make_train_cfg("trainer.max_epochs=2", "callbacks.last_checkpoint.every_n_train_steps=1000")
    )
    last = torch.load(Path(objects["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == metrics["train/global_step"] == 12
    assert last["epoch"] == 1


def test_ctrl_c_saves_the_model_and_a_resumable_checkpoint(tmp_path, make_train_cfg) -> None:
    run = tmp_path / "run"
    result = run_cli(
        *TRAIN,
        "trainer.max_epochs=2",
        "+callbacks.stop._target_=tests.helpers.InterruptAtStep",
        "+callbacks.stop.step=3",
        f"hydra.run.dir={run}",
        env=WITH_TEST_HELPERS,
    )
    assert result.returncode != 0
    checkpoint = run / "checkpoints" / "last.ckpt"
    # Ctrl-C before step 4: step 4 finishes, is checkpointed, and the run stops there
    assert f"Interrupted at step 4: saved the current weights to {run / 'model'}" in result.stdout
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 4
    assert f"resume with ckpt_path={checkpoint}" in result.stdout
    assert (run / "config.yaml").is_file()
    usable(run)
    metrics, _ = train(make_train_cfg("trainer.max_epochs=2", f"ckpt_path={checkpoint}"))
    assert metrics["train/global_step"] == 12


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("data.batch_size=-1", "data.batch_size=-1: must be at least 1"),
        ("optimizer.lr=0", "optimizer.lr=0: must be above 0 (nothing would train)"),
        # typed at composition (an enum in schemas/train.py): refused before anything loads
        (
            "checkpoint.select=median",
            "checkpoint.select=median: Invalid value 'median', expected one of [last, best]",
        ),
    ],
)
def test_options_that_would_fail_late_are_refused_at_once(option, expected, tmp_path) -> None:
    line = one_line(run_cli(*TRAIN, option, f"hydra.run.dir={tmp_path}"), "tonetune-train")
    assert line.endswith(expected)


def test_a_full_disk_is_one_line_naming_the_file(trained, tmp_path) -> None:  # models cached first
    def small_files() -> None:  # writing past 2 MB fails as on a full disk (EFBIG instead of ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))

    result = run_cli(*TRAIN, "adapter=full", f"hydra.run.dir={tmp_path}", preexec_fn=small_files)
    line = one_line(result, "tonetune-train")
    assert "cannot write" in line and "File too large" in line


# -- run folders that are not what they should be ------------------------------------------------


@pytest.fixture
def truncated_run(trained, tmp_path) -> Path:
    run = tmp_path / "damaged"
    shutil.copytree(trained, run)
    weights = run / "model" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return run


def test_a_truncated_adapter_is_one_line_in_evaluate_and_serve(truncated_run, tmp_path) -> None:
    for command in ("tonetune-evaluate", "tonetune-serve"):
        extra = ["logger=none"] if command == "tonetune-evaluate" else [f"port={free_port()}"]
        result = run_cli(command, f"run_dir={truncated_run}", *extra, f"hydra.run.dir={tmp_path / command}")
        line = one_line(result, command)
        assert f"{truncated_run / 'model'}" in line and (
            "damaged or truncated" in line or "cannot read" in line
        )


def test_serving_an_empty_folder_is_one_line(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("tonetune-serve", f"run_dir={tmp_path / 'empty'}", f"hydra.run.dir={tmp_path / 's'}")
    assert "no config.yaml; is this a tonetune-train run folder?" in one_line(result, "tonetune-serve")


def test_a_missing_sweep_folder_is_one_line_and_creates_nothing(tmp_path) -> None:
    missing = tmp_path / "no_sweep"
    result = run_cli(
        "tonetune-sweep-report", f"sweep_dir={missing}", env={"TONETUNE_OUTPUTS": str(tmp_path / "out")}
    )
    assert f"sweep_dir={missing}: no such folder" in one_line(result, "tonetune-sweep-report")
    assert not missing.exists()


# -- data ---------------------------------------------------------------------------------------


def test_a_fresh_checkout_says_what_creates_the_dataset(tmp_path) -> None:
    result = run_cli(
        "tonetune-train",
        "base_model=tiny",
        "logger=none",
        f"paths.data_root={tmp_path / 'data'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    line = one_line(result, "tonetune-train")
    assert "no such file or folder" in line and "tonetune-synthesize" in line and "data=example" in line


def test_a_missing_relative_path_is_not_looked_up_on_the_hub(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    with pytest.raises(DataError, match=r"data.source=mydir/train.jsonl: no such file or folder$"):
        load_conversations("mydir/train.jsonl")
    assert time.monotonic() - started < 2


def test_bytes_that_are_not_utf8_name_the_file_and_line(tmp_path) -> None:
    data = tmp_path / "latin1.jsonl"
    data.write_bytes(b'{"question": "Q", "answer": "A"}\n{"question": "caf\xe9?", "answer": "A"}\n')
    result = run_cli(*TRAIN, f"data.source={data}", f"hydra.run.dir={tmp_path / 'run'}")
    assert one_line(result, "tonetune-train").endswith(
        f"{data} line 2: not UTF-8 text (byte 0xe9 at column 18)"
    )


# -- synthesis: your files, dead endpoints --------------------------------------------------------


def synthesize_cli(base_url: str, tmp_path: Path, data_dir: Path, *extra: str, timeout: int = 300):
    return run_cli(
        "tonetune-synthesize",
        "teacher=openai_compatible",
        f"teacher.base_url={base_url}",
        "question_set.questions_per_prompt=4",
        "logger=none",
        "preferences.enabled=false",
        f"data_dir={data_dir}",
        f"paths.response_cache={tmp_path / 'cache.sqlite'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        *extra,
        timeout=timeout,
    )


def test_synthesis_never_deletes_what_it_did_not_write(tmp_path) -> None:
    from tests.openai_stub import StubOpenAI

    stub = StubOpenAI()
    url = stub.start()
    data_dir = tmp_path / "data" / "elon_musk"
    try:
        data_dir.mkdir(parents=True)
        (data_dir / "my_notes.txt").write_text("mine")
        line = one_line(synthesize_cli(url, tmp_path, data_dir, "overwrite=true"), "tonetune-synthesize")
        assert "was not written by tonetune-synthesize" in line and "my_notes.txt" in line
        assert (data_dir / "my_notes.txt").read_text() == "mine" and len(list(data_dir.iterdir())) == 1

        (data_dir / "my_notes.txt").unlink()
        assert synthesize_cli(url, tmp_path, data_dir).returncode == 0
        (data_dir / "my_notes.txt").write_text("mine")
        first = (data_dir / "README.md").read_text()
        line = one_line(synthesize_cli(url, tmp_path, data_dir, "seed=7"), "tonetune-synthesize")
        assert "set overwrite=true" in line and (data_dir / "README.md").read_text() == first
        assert synthesize_cli(url, tmp_path, data_dir, "seed=7", "overwrite=true").returncode == 0
        assert (data_dir / "my_notes.txt").read_text() == "mine"
        assert (data_dir / "dataset_dict.json").is_file()
    finally:
        stub.stop()


def test_a_refused_connection_fails_in_seconds_naming_the_endpoint(tmp_path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    line = one_line(synthesize_cli(url, tmp_path, tmp_path / "data"), "tonetune-synthesize")
    assert time.monotonic() - started < 30  # the run itself, imports included; no minute of retries
    assert f"teacher.base_url={url}: cannot connect" in line


def test_a_stalled_endpoint_is_bounded_by_the_stall_timeout(tmp_path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted = []
    threading.Thread(
        target=lambda: [accepted.append(listener.accept()) for _ in iter(int, 1)], daemon=True
    ).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    started = time.monotonic()
    result = synthesize_cli(url, tmp_path, tmp_path / "data", "teacher.stall_timeout=4", "teacher.timeout=60")
    elapsed = time.monotonic() - started
    listener.close()
    line = one_line(result, "tonetune-synthesize")
    assert "no answer for 4 s (teacher.stall_timeout)" in line and url in line
    assert elapsed < 40 and accepted
