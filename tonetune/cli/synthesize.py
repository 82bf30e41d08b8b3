"""A teacher LLM writes a persona dataset for tonetune-train.

Run as:
    tonetune-synthesize                                        # offline: embedded SmolLM2 teacher
    tonetune-synthesize teacher=openai teacher.model=gpt-4o persona=pirate_captain
    tonetune-synthesize teacher=openai_compatible teacher.base_url=http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from tonetune.cli.errors import exit_on_user_error, run_app
from tonetune.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="synthesize")
@exit_on_user_error("tonetune-synthesize")
def _main(cfg: DictConfig) -> None:
    from tonetune.config import command_config
    from tonetune.schemas.synthesize import SynthesizeConfig
    from tonetune.workflows import run_synthesis

    report, objects = run_synthesis(command_config(SynthesizeConfig, cfg))  # typed once, here
    print(f"Dataset: {report['data_dir']} ({report['splits']}); card and report in {objects['run_dir']}")


def main() -> None:
    """Console entrypoint ``tonetune-synthesize``."""
    run_app(_main, "tonetune-synthesize")


if __name__ == "__main__":
    main()
