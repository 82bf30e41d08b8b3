"""Evaluate a fine-tuned run against its base model (with and without the persona prompt).

Run as:
    tonetune-evaluate run_dir=outputs/train/runs/<run>
    tonetune-evaluate run_dir=... +reference=openai_compatible \
        evaluation.contestants.large_prompted.endpoint.base_url=http://127.0.0.1:8000/v1
    tonetune-evaluate run_dir=... +judge=openai evaluation.judge.model=gpt-4o
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from tonetune.cli.errors import exit_on_user_error, run_app
from tonetune.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
@exit_on_user_error("tonetune-evaluate")
def _main(cfg: DictConfig) -> None:
    from tonetune.config import command_config
    from tonetune.schemas.commands import EvaluateConfig
    from tonetune.workflows import headline, run_evaluation

    result, objects = run_evaluation(command_config(EvaluateConfig, cfg))  # typed once, here
    print(headline(result))
    print(f"Report (every metric, samples, plots): {objects['out_dir'] / 'report.md'}")


def main() -> None:
    """Console entrypoint ``tonetune-evaluate``."""
    run_app(_main, "tonetune-evaluate")


if __name__ == "__main__":
    main()
