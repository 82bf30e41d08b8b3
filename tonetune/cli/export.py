"""Export a run: merged Hugging Face folder with a model card, GGUF and an Ollama Modelfile.

Run as:
    tonetune-export run_dir=outputs/train/runs/<run>
    tonetune-export run_dir=... gguf.dtype=f32
    tonetune-export run_dir=... overwrite=true       # replace tonetune's earlier export (never your files)
    tonetune-export run_dir=... verify=true          # needs llama-cpp-python (pip install 'tonetune[gguf]')
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from tonetune.cli.errors import exit_on_user_error, run_app
from tonetune.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="export")
@exit_on_user_error("tonetune-export")
def _main(cfg: DictConfig) -> None:
    from tonetune.config import command_config
    from tonetune.schemas.commands import ExportConfig
    from tonetune.workflows import run_export

    result, agreement = run_export(command_config(ExportConfig, cfg))  # typed once, here
    print(f"Hugging Face folder: {result['hf_dir']}")
    if "gguf" in result:
        print(
            f"GGUF: {result['gguf']}\n"
            f"Ollama: cd {Path(result['modelfile']).parent} && ollama create <name> -f Modelfile"
        )
    if agreement is not None:
        print(agreement.summary())


def main() -> None:
    """Console entrypoint ``tonetune-export``."""
    run_app(_main, "tonetune-export")


if __name__ == "__main__":
    main()
