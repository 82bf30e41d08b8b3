"""Chat with a persona model in the terminal.

Run as:
    tonetune-chat run_dir=outputs/train/runs/<run>
    tonetune-chat run_dir=... temperature=0.7
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from tonetune.cli.errors import exit_on_user_error, run_app
from tonetune.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="chat")
@exit_on_user_error("tonetune-chat")
def _main(cfg: DictConfig) -> None:
    from tonetune.serving.chat import chat_loop
    from tonetune.serving.engine import Engine
    from tonetune.serving.loading import load_model, system_prompt_for

    loaded = load_model(
        cfg.run_dir,
        cfg.model_dir,
        None if cfg.run_dir or cfg.model_dir else cfg.base_model,
        cfg.merge_adapter,
    )
    chat_loop(
        Engine(loaded.model, loaded.tokenizer),
        loaded.name,
        system_prompt_for(loaded, cfg.system_prompt),
        cfg.max_new_tokens,
        cfg.temperature,
    )


def main() -> None:
    """Console entrypoint ``tonetune-chat``."""
    run_app(_main, "tonetune-chat")


if __name__ == "__main__":
    main()
