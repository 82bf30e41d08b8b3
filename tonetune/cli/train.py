"""Fine-tune a small model in a persona's tone.

Run as:
    tonetune-train                                   # defaults: elon_musk, smollm2_135m, lora
    tonetune-train adapter=qlora persona=pirate_captain data=example
    tonetune-train -m adapter.r=8,16 optimizer.lr=1e-4,3e-4
    tonetune-train objective=dpo init_from=outputs/train/runs/<sft run>
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from tonetune.cli.errors import exit_on_user_error, run_app
from tonetune.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
@exit_on_user_error("tonetune-train")
def _main(cfg: DictConfig) -> float | None:
    from tonetune.config import command_config
    from tonetune.schemas.train import TrainConfig
    from tonetune.workflows import run_training

    config = command_config(TrainConfig, cfg)  # typed once, here: no stage below reads a DictConfig
    metrics, objects = run_training(config)
    if objects["trainer"].is_global_zero:
        print(f"Run folder: {objects['run_dir']} (model/, metrics.json, config.yaml)")
    return metrics.get(config.optimized_metric) if config.optimized_metric else None


def main() -> None:
    """Console entrypoint ``tonetune-train``."""
    run_app(_main, "tonetune-train")


if __name__ == "__main__":
    main()
