"""The package reads top to bottom: cli -> workflows -> stages -> shared parts -> config; no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tonetune

PACKAGE = Path(tonetune.__file__).parent
LAYERS = [
    {"cli"},
    {"workflows"},
    {"arena"},  # a page over the server's loading code
    {"synthesis", "training", "evaluation", "serving", "sweep_report"},
    {"llm"},
    {"generation", "data", "markdown", "stats", "runtime", "folders"},
    {"models"},
    {"config", "persona"},
    {"schemas", "errors"},
]


def layer(name: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if name in names)


def imports() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> the modules where it happens."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tonetune."):
                target = node.module.split(".")[1]
                if target != part:
                    found.setdefault((part, target), []).append(str(path.relative_to(PACKAGE)))
            elif isinstance(node, ast.ImportFrom) and node.module == "tonetune":
                for alias in node.names:
                    found.setdefault((part, alias.name), []).append(str(path.relative_to(PACKAGE)))
    return found


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    parts -= {"__init__", "__pycache__", "resources", "conf"}
    assert parts <= set().union(*LAYERS), parts - set().union(*LAYERS)


def test_imports_only_go_down_and_stages_never_import_each_other() -> None:
    upward = {edge: where for edge, where in imports().items() if layer(edge[0]) >= layer(edge[1])}
    assert upward == {}


def test_persona_cards_load_without_torch() -> None:
    code = "import sys, tonetune.persona, tonetune.schemas; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )


def test_importing_the_package_registers_nothing() -> None:
    code = (
        "import tonetune, tonetune.config, tonetune.training.train; "
        "from hydra.core.config_store import ConfigStore; from omegaconf import OmegaConf; "
        "print(bool(ConfigStore.instance().repo.get('persona')), OmegaConf.has_resolver('tonetune.abspath'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False False", result.stderr[-2000:]
