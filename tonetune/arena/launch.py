"""Everything ``tonetune-arena`` sets up.

The served runs (the server's loading code), the base, the endpoints, the questions to draw from,
and the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra

from tonetune.arena.app import Arena, build_page
from tonetune.arena.contestants import arena_contestants
from tonetune.config import command_config
from tonetune.data.loading import Columns
from tonetune.data.question_lists import load_question_set
from tonetune.generation.engine import Engine
from tonetune.generation.sampling import Sampling
from tonetune.models.base_models import load_causal_lm, load_tokenizer
from tonetune.models.runs import read_run
from tonetune.schemas.commands import ArenaConfig
from tonetune.serving.served import load_served


def build_arena(cfg: ArenaConfig | Any) -> tuple[Arena, Any]:
    """The arena and its Gradio page for the arena's config (conf/arena.yaml; typed at the door)."""
    cfg = command_config(ArenaConfig, cfg)
    run_dirs = [cfg.run_dir] if isinstance(cfg.run_dir, str) else list(cfg.run_dir)
    first = read_run(run_dirs[0])
    served = load_served(run_dirs, None, None, merge_adapter=False, dtype=cfg.dtype)
    base = (
        None
        if served.engine.adapters
        else Engine(load_causal_lm(first.base_model), load_tokenizer(first.base_model), dtype=cfg.dtype)
    )
    endpoints = {
        name: hydra.utils.instantiate(node, role=f"endpoints.{name}") for name, node in cfg.endpoints.items()
    }
    names = (
        list(cfg.contestants) if cfg.contestants else [*served.models, "base", "base_prompted", *endpoints]
    )
    contestants = arena_contestants(
        served,
        base,
        first.persona,
        names,
        endpoints,
        Sampling.from_config(cfg.sampling, "sampling"),
    )
    source = cfg.questions or first.data.source
    questions = load_question_set("arena", str(source), "test", Columns(), "questions").questions
    arena = Arena(contestants, questions, Path(cfg.votes), cfg.seed)
    return arena, build_page(arena, first.persona.display_name)
