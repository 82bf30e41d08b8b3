"""Checks before training starts: options that would train for nothing, and checkpoints safe to resume.

A checkpoint is read with ``weights_only=True`` (a file that holds code is refused, never run) from
a local path only, and its tensors must fit the model being built.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from tonetune.errors import ConfigError
from tonetune.schemas.train import TrainConfig


def check_options(config: TrainConfig) -> None:
    """Refuse settings that fail late or train silently for nothing (types were checked at composition)."""
    lr = config.optimizer.get("lr")
    if lr is not None and not float(lr) > 0:
        raise ConfigError(f"optimizer.lr={lr}: must be above 0 (nothing would train)")
    for key in ("batch_size", "eval_batch_size", "max_length"):
        value = getattr(config.data, key)
        if value is not None and value < 1:
            raise ConfigError(f"data.{key}={value}: must be at least 1")


def read_checkpoint(ckpt_path: str) -> dict[str, Any]:
    """A resumable checkpoint from a local file, read without running any code; one clear line otherwise."""
    if urlparse(str(ckpt_path)).scheme not in {"", "file"}:
        raise ConfigError(
            f"ckpt_path={ckpt_path}: only local checkpoint files are resumed from (a downloaded checkpoint "
            "can carry code); download it, check where it came from, and pass its path"
        )
    path = Path(str(ckpt_path).removeprefix("file://")).expanduser()
    if not path.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such file (checkpoints are in <run>/checkpoints/)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        raise ConfigError(
            f"ckpt_path={ckpt_path}: refused: it holds Python objects besides weights, and loading them "
            "could "
            "run code"
        ) from err
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ConfigError(
            f"ckpt_path={ckpt_path}: not a readable checkpoint (truncated or corrupt: {err})"
        ) from err


def check_resumable(checkpoint: dict[str, Any], module: torch.nn.Module, ckpt_path: str) -> None:
    """The checkpoint's trainable tensors must exist in ``module`` with the same shapes."""
    saved = checkpoint.get("state_dict")
    if not isinstance(saved, dict):
        raise ConfigError(f"ckpt_path={ckpt_path}: not a tonetune-train checkpoint (no state_dict)")
    current = dict(module.state_dict())
    for name, tensor in saved.items():
        if name not in current:
            raise ConfigError(
                f"ckpt_path={ckpt_path}: holds {name}, which this model does not have; resume with the "
                "adapter.* and base_model settings it was trained with"
            )
        if tuple(current[name].shape) != tuple(tensor.shape):
            raise ConfigError(
                f"ckpt_path={ckpt_path}: {name} is {tuple(tensor.shape)} there and "
                f"{tuple(current[name].shape)} "
                "here; resume with the adapter.* settings it was trained with (adapter.r, target modules...)"
            )
