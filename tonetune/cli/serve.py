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
from tonetune.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="serve")
@exit_on_user_error("tonetune-serve")
def _main(cfg: DictConfig) -> None:
    from tonetune.config import typed
    from tonetune.serving.server import ServerSettings, serve

    served = load_from_cfg(cfg)
    settings = typed(ServerSettings, cfg.server)
    names = ", ".join(served.models)
    print(f"Serving {names} on http://{cfg.host}:{cfg.port}/v1 (Ctrl+C to stop)", flush=True)
    serve(served, settings, cfg.host, cfg.port)


def load_from_cfg(cfg: DictConfig):
    """What serve.yaml / chat.yaml name: runs, a model folder, or the base model."""
    from tonetune.config import plain, typed
    from tonetune.schemas import BaseModelConfig
    from tonetune.serving.loading import load_served

    run_dirs = plain(cfg.run_dir)
    run_dirs = [run_dirs] if isinstance(run_dirs, str) else list(run_dirs or [])
    base = None if run_dirs or cfg.model_dir else typed(BaseModelConfig, cfg.base_model)
    return load_served(
        run_dirs, cfg.model_dir, base, cfg.merge_adapter, cfg.system_prompt, cfg.get("model_name")
    )


def main() -> None:
    """Console entrypoint ``tonetune-serve``."""
    run_app(_main, "tonetune-serve")


if __name__ == "__main__":
    main()
