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
    {"schemas", "hardware"},
    {"errors"},
]


def layer(name: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if name in names)


def module_name(path: Path) -> str:
    """``tonetune.a.b`` for ``tonetune/a/b.py`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[str]:
    """Every tonetune module ``path`` imports (``from tonetune.x import y``, ``import tonetune.x``, lazy)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tonetune"):
            names = [f"{node.module}.{a.name}" for a in node.names]
            found += [
                n if (PACKAGE.parent / n.replace(".", "/")).with_suffix(".py").exists() else node.module
                for n in names
            ]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("tonetune.")]
    return found


def module_graph() -> dict[str, set[str]]:
    """Module -> the tonetune modules it imports."""
    return {module_name(p): set(imported_modules(p)) - {module_name(p)} for p in PACKAGE.rglob("*.py")}


def imports() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> the modules where it happens."""
    found: dict[tuple[str, str], list[str]] = {}
    for module, targets in module_graph().items():
        part = module.split(".")[1] if "." in module else ""
        for target in targets:
            imported = target.split(".")[1] if "." in target else ""
            if imported and imported != part:
                found.setdefault((part, imported), []).append(module)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between modules (each reported once, from its first module by name)."""
    found, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                found.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return found


def test_no_import_cycles_between_modules() -> None:
    graph = {m: {t for t in targets if t != "tonetune"} for m, targets in module_graph().items()}
    assert cycles(graph) == []


def test_every_cli_goes_through_the_workflows() -> None:
    """The one rule: a CLI composes and prints; it reaches the stages only through ``workflows``."""
    allowed = {"cli", "workflows", "config", "schemas", "errors", "runtime"}  # runtime: process set-up
    reached = {
        edge: where for edge, where in imports().items() if edge[0] == "cli" and edge[1] not in allowed
    }
    assert reached == {}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


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
