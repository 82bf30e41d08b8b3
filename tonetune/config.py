"""Where tonetune's configs live, the schemas Hydra knows, our resolvers, and typed conversion.

Nothing happens at import: entrypoints (and ``compose``) call ``register_configs`` first.
"""

from __future__ import annotations

import os
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from tonetune.hardware import best_decode_dtype, best_precision
from tonetune.schemas import AdapterConfig, BaseModelConfig, PersonaConfig, QuestionSetConfig
from tonetune.schemas.commands import (
    ArenaConfig,
    ChatConfig,
    EvaluateConfig,
    ExportConfig,
    ServeConfig,
    SweepReportConfig,
)
from tonetune.schemas.evaluation import EvaluationConfig
from tonetune.schemas.synthesize import SynthesizeConfig
from tonetune.schemas.train import TrainConfig

PACKAGE_DIR = Path(__file__).resolve().parent
RESOURCES_DIR = PACKAGE_DIR / "resources"
T = TypeVar("T")
SCHEMAS: dict[str, type] = {
    "persona": PersonaConfig,
    "adapter": AdapterConfig,
    "base_model": BaseModelConfig,
    "question_set": QuestionSetConfig,
    "evaluation": EvaluationConfig,
}
"""Config group -> its schema (``<group>/schema`` in Hydra's ConfigStore; each YAML extends it)."""
COMMAND_SCHEMAS: dict[str, type] = {
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "arena": ArenaConfig,
    "synthesize": SynthesizeConfig,
    "export": ExportConfig,
    "serve": ServeConfig,
    "chat": ChatConfig,
    "sweep_report": SweepReportConfig,
}
"""Command -> the schema of its whole config (``<command>_schema``, first in ``conf/<command>.yaml``)."""
Instantiable = dict[str, Any]
"""A config node naming a class by ``_target_``: it goes only to ``hydra.utils.instantiate``."""


def _find_config_dir() -> Path:
    """The `conf/` folder: inside the package for a wheel install, beside it for a source checkout."""
    for candidate in (PACKAGE_DIR / "conf", PACKAGE_DIR.parent / "conf"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tonetune's conf/ folder is neither in {PACKAGE_DIR} nor beside it")


CONFIG_DIR = _find_config_dir()
REPO_ROOT = CONFIG_DIR.parent


def default_cache_dir() -> Path:
    """Folder for converted models and other reusable artifacts (``TONETUNE_CACHE`` overrides it)."""
    root = os.environ.get("TONETUNE_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "tonetune"
    return Path(root).expanduser()


def register_configs() -> None:
    """Put our schemas in Hydra's ConfigStore and our resolvers in OmegaConf (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        store.store(group=group, name="schema", node=schema)
    for command, schema in COMMAND_SCHEMAS.items():
        store.store(name=f"{command}_schema", node=schema)
    resolvers = {
        "tonetune.repo_root": lambda: str(REPO_ROOT),
        "tonetune.resources": lambda: str(RESOURCES_DIR),
        "tonetune.cache_dir": lambda: str(default_cache_dir()),
        # Run folders record absolute paths, so a run can be evaluated or served from anywhere.
        "tonetune.abspath": lambda path: str(Path(path).expanduser().resolve()),
        "tonetune.precision": best_precision,
        "tonetune.decode_dtype": best_decode_dtype,
    }
    for name, fn in resolvers.items():
        OmegaConf.register_new_resolver(name, fn, replace=True)


def compose(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` as the CLI would, with Hydra's runtime config set.

    For tests, benchmarks and notebooks: the result goes straight into ``train(cfg)`` and friends.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def command_config(schema: type[T], cfg: Any) -> T:
    """The composed config of a command (Hydra's own node left out) as its typed schema, resolved."""
    if isinstance(cfg, schema):
        return cfg
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]) if "hydra" in cfg else cfg
    return typed(schema, job)


def typed(schema: type[T], node: Any) -> T:
    """``node`` (a composed group, or the same group read back from a run's config.yaml) as ``schema``."""
    if isinstance(node, schema):
        return node
    if isinstance(node, DictConfig):  # resolve in place: `${init_from}` names a key of the root
        node = OmegaConf.to_container(node, resolve=True)
    merged = OmegaConf.merge(OmegaConf.structured(schema), node)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def plain_config(config: Any) -> Any:
    """A typed config (a dataclass) or a config node as plain, resolved containers (enums as names)."""
    if is_dataclass(config) and not isinstance(config, type):
        config = OmegaConf.structured(config)
    return plain(config)


def plain(node: Any) -> Any:
    """A DictConfig/ListConfig as plain containers, resolved (enums as their names); other values as is."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    return node
