"""Glue between Hydra configs and the objects they describe: task wrapper, instantiation, saving."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def task_wrapper(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Run a task and always close its W&B run, so multirun jobs never merge into one run."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        finally:
            _finish_wandb()

    return wrapped


def _finish_wandb() -> None:
    import wandb

    if wandb.run is not None:
        wandb.finish()


def instantiate_named(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a name -> config mapping (callbacks, loggers)."""
    if not group:
        return []
    return [hydra.utils.instantiate(node) for node in group.values() if node and "_target_" in node]


def resolved_job_config(cfg: Any) -> dict[str, Any]:
    """The job's config (composed, or typed) as plain, resolved containers (without Hydra's own node)."""
    if not OmegaConf.is_config(cfg):
        cfg = OmegaConf.structured(cfg)
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    return OmegaConf.to_container(job, resolve=True, enum_to_str=True)  # type: ignore[return-value]


def save_resolved_config(cfg: Any, path: Path) -> None:
    """Write the config fully resolved, so the run folder explains itself without Hydra."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(resolved_job_config(cfg)))


def write_json(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` as indented JSON (numbers made plain floats)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")


def quiet_libraries() -> None:
    """Silence what dependencies print on every run with nothing for a tonetune user to act on."""
    import warnings

    # bitsandbytes tries to fetch an optional CPU kernel from the Hub and warns when it cannot; its
    # built-in kernels work.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    for message in (
        r".*set_vital.*",
        r".*isinstance\(treespec, LeafSpec\).*",
        r".*is_gradient_checkpointing.*",
    ):
        warnings.filterwarnings("ignore", message=message)


class Stopwatch:
    """Seconds spent per named section, in the order they first ran (for a report's timing line)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        """Time the block and add it to ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
