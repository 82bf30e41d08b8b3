"""Logger factories: W&B that goes offline by itself without credentials and groups sweep jobs."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)


def wandb_has_credentials() -> bool:
    """True when a W&B API key is available: ``WANDB_API_KEY``, or the netrc entry ``wandb login`` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host or "") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_offline() -> bool:
    """Offline unless credentials exist; an explicit ``WANDB_MODE`` wins."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode in {"offline", "dryrun", "disabled"}
    return not wandb_has_credentials()


def sweep_identity() -> tuple[str | None, str | None]:
    """(group, run name) for a Hydra multirun job: the sweep folder groups its jobs; None otherwise."""
    if not HydraConfig.initialized():
        return None, None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None, None
    group = Path(hydra_cfg.sweep.dir).name
    return group, f"{group}-job{hydra_cfg.job.num}"


def wandb_logger(
    project: str = "tonetune",
    save_dir: str = ".",
    offline: bool | None = None,
    group: str | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """A WandbLogger that is offline unless credentials exist, with sweep jobs grouped by sweep.

    Args:
        project: W&B project.
        save_dir: Folder that receives ``wandb/`` (the run folder).
        offline: Force offline (True) or online (False); None decides from the credentials.
        group: W&B group; None groups multirun jobs by their sweep folder.
        name: Run name; None names multirun jobs ``<sweep>-job<N>``.
        **kwargs: Passed to ``WandbLogger`` (tags, job_type, entity, ...).
    """
    if offline is None:
        offline = wandb_offline()
        if offline:
            log.info(
                "No W&B credentials: logging offline to %s/wandb (sync later with `wandb sync`)", save_dir
            )
    sweep_group, sweep_name = sweep_identity()
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=project,
        save_dir=save_dir,
        offline=offline,
        group=group or sweep_group,
        name=name or sweep_name,
        **kwargs,
    )
