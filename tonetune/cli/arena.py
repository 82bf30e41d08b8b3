"""Judge the tone in a browser: a blind side-by-side arena whose votes become preference data.

Run as:
    tonetune-arena run_dir=outputs/train/runs/<run>          # then open http://127.0.0.1:7860
    tonetune-arena 'run_dir=[<elon run>,<yoda run>]' contestants=[elon_musk,yoda,base]
    tonetune-train objective=dpo data.source=outputs/arena/runs/<arena>/votes.jsonl init_from=<run>
"""

from __future__ import annotations

import os

import hydra
from omegaconf import DictConfig

from tonetune.cli.errors import exit_on_user_error, run_app
from tonetune.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="arena")
@exit_on_user_error("tonetune-arena")
def _main(cfg: DictConfig) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves this machine
    from tonetune.config import command_config
    from tonetune.schemas.commands import ArenaConfig
    from tonetune.workflows import build_arena

    config = command_config(ArenaConfig, cfg)  # typed once, here
    arena, page = build_arena(config)
    where = f"http://{config.host}:{config.port}"
    print(f"Arena on {where} ({', '.join(arena.contestants)}); votes: {arena.log.path}", flush=True)
    page.queue().launch(server_name=config.host, server_port=config.port, share=False, quiet=True)


def main() -> None:
    """Console entrypoint ``tonetune-arena``."""
    run_app(_main, "tonetune-arena")


if __name__ == "__main__":
    main()
