"""Where tonetune's configs live, the schemas Hydra knows, and our OmegaConf resolvers.

Importing this module registers everything; every entrypoint and test imports it first.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from tonetune.schemas import AdapterConfig, BaseModelConfig, PersonaConfig, QuestionSetConfig

PACKAGE_DIR = Path(__file__).resolve().parent
RESOURCES_DIR = PACKAGE_DIR / "resources"


def _find_config_dir() -> Path:
    """The `conf/` folder: inside the package for a wheel install, beside it for a source checkout."""
    for candidate in (PACKAGE_DIR / "conf", PACKAGE_DIR.parent / "conf"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tonetune's conf/ folder is neither in {PACKAGE_DIR} nor beside it")


CONFIG_DIR = _find_config_dir()
REPO_ROOT = CONFIG_DIR.parent

SCHEMAS = {
    "persona": PersonaConfig,
    "adapter": AdapterConfig,
    "base_model": BaseModelConfig,
    "question_set": QuestionSetConfig,
}


def default_cache_dir() -> Path:
    """Folder for converted models and other reusable artifacts (``TONETUNE_CACHE`` overrides it)."""
    root = os.environ.get("TONETUNE_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "tonetune"
    return Path(root).expanduser()


def _register() -> None:
    store = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        store.store(group=group, name="schema", node=schema)
    resolvers = {
        "tonetune.repo_root": lambda: str(REPO_ROOT),
        "tonetune.resources": lambda: str(RESOURCES_DIR),
        "tonetune.cache_dir": lambda: str(default_cache_dir()),
        # Run folders record absolute paths, so a run can be evaluated or served from anywhere.
        "tonetune.abspath": lambda path: str(Path(path).expanduser().resolve()),
    }
    for name, fn in resolvers.items():
        OmegaConf.register_new_resolver(name, fn, replace=True)


_register()
