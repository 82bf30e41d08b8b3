"""Shared fixtures: compose the real configs, shrink them, point outputs at tmp_path."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from tonetune.config import REPO_ROOT, compose

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a model hub during tests

SHARED_DIR = Path(os.environ.get("TONETUNE_SHARED", REPO_ROOT.parent / "shared"))
ELON_GPT4 = SHARED_DIR / "data" / "elon_musk_gpt4.jsonl"
EXAMPLE_DATA = REPO_ROOT / "tonetune" / "resources" / "examples" / "elon_musk_tweets.jsonl"

# Small, fast settings for the tiny model: no W&B, CPU, one short epoch.
FAST_TRAIN = [
    "base_model=tiny",
    "data=example",
    "logger=none",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "~callbacks.model_summary",
]


compose_config = compose  # the composed config the CLI would build, Hydra's runtime config set


@pytest.fixture
def make_train_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose a fast train config whose run folder is under tmp_path."""

    def make(*overrides: str, run_name: str = "run") -> DictConfig:
        return compose_config("train", [*FAST_TRAIN, f"paths.output_dir={tmp_path / run_name}", *overrides])

    return make


@pytest.fixture(scope="session")
def smollm_tokenizer():
    """The embedded SmolLM2-135M-Instruct tokenizer (converts the GGUF once per cache)."""
    from tonetune.config import typed
    from tonetune.models.base_models import load_tokenizer
    from tonetune.schemas import BaseModelConfig

    cfg = compose_config("train", ["base_model=smollm2_135m", "paths.output_dir=/tmp/unused"])
    return load_tokenizer(typed(BaseModelConfig, cfg.base_model))
