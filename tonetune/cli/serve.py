"""Serve persona models behind an OpenAI-compatible API.

Run as:
    tonetune-serve run_dir=outputs/train/runs/<run>                 # http://127.0.0.1:8000/v1
    tonetune-serve 'run_dir=[outputs/train/runs/<elon>,outputs/train/runs/<yoda>]'   # one base, two personas
    TONETUNE_SERVE_API_KEY=secret tonetune-serve run_dir=... port=9000
    tonetune-synthesize teacher=openai_compatible teacher.base_url=http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from tonetune.cli.errors import exit_on_user_error, run_app
from tonetune.config import CONFIG_DIR, command_config


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="serve")
@exit_on_user_error("tonetune-serve")
def _main(cfg: DictConfig) -> None:
    from tonetune.schemas.commands import ServeConfig
    from tonetune.workflows import load_served, serve

    config = command_config(ServeConfig, cfg)
    served = load_served(config)
    names = ", ".join(served.models)
    print(f"Serving {names} on http://{config.host}:{config.port}/v1 (Ctrl+C to stop)", flush=True)
    serve(served, config.server, config.host, config.port)


def main() -> None:
    """Console entrypoint ``tonetune-serve``."""
    run_app(_main, "tonetune-serve")


if __name__ == "__main__":
    main()
