"""Chat with a persona model in the terminal.

Run as:
    tonetune-chat run_dir=outputs/train/runs/<run>
    tonetune-chat run_dir=... temperature=0.7 repetition_penalty=1.0
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from tonetune.cli.errors import exit_on_user_error, run_app
from tonetune.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="chat")
@exit_on_user_error("tonetune-chat")
def _main(cfg: DictConfig) -> None:
    from transformers.utils import logging as hf_logging

    from tonetune.config import command_config
    from tonetune.schemas.commands import ChatConfig
    from tonetune.workflows import chat, load_served

    hf_logging.disable_progress_bar()  # the terminal is the conversation's: no loading bars in it
    config = command_config(ChatConfig, cfg)
    names = ("max_new_tokens", "temperature", "top_p", "repetition_penalty")
    chat(load_served(config), {name: getattr(config, name) for name in names})


def main() -> None:
    """Console entrypoint ``tonetune-chat``."""
    run_app(_main, "tonetune-chat")


if __name__ == "__main__":
    main()
