"""Issue 19, items 10-14: secrets in endpoint URLs, linked data folders, oversized and foreign-language
replies, one vote per arena round, export folders that keep the user's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FAST_TRAIN, compose_config
from tonetune.errors import DataError
from tonetune.serving.export import GGUFSettings, export_run
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
    with pytest.raises(DataError, match="out_dir=.*not written by tonetune-export"):
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
    with pytest.raises(DataError, match="hf/notes.txt there is not tonetune's"):
        export_run(tiny_run, ours, ["Hi?"], 4, settings, overwrite=True)
    assert unchanged(ours, {"hf/notes.txt": "mine, inside tonetune's folder\n", **USER_FILES})
    assert not list(tmp_path.glob(".*.tmp"))  # no stray staging folder
