"""Serve a persona model behind an OpenAI-compatible API (LitServe).

Run as:
    tonetune-serve run_dir=outputs/train/runs/<run>                 # http://127.0.0.1:8000/v1
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
    from tonetune.serving.server import build_server

    server = build_server(cfg)
    print(f"Serving on http://{cfg.host}:{cfg.port}/v1 (Ctrl+C to stop)", flush=True)
    server.run(host=cfg.host, port=cfg.port, generate_client_file=False, log_level="warning")


def main() -> None:
    """Console entrypoint ``tonetune-serve``."""
    run_app(_main, "tonetune-serve")


if __name__ == "__main__":
    main()
