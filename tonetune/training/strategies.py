"""Lightning strategies that need Python objects a YAML file cannot name directly."""

from __future__ import annotations

from typing import Any

from hydra.utils import get_class
from lightning.pytorch.strategies import FSDPStrategy


def fsdp_strategy(
    block_classes: list[str],
    sharding_strategy: str = "FULL_SHARD",
    activation_checkpointing: bool = False,
    **kwargs: Any,
) -> FSDPStrategy:
    """FSDP wrapping each transformer block; ``use_orig_params`` lets frozen and LoRA weights share a unit."""
    classes = {get_class(path) for path in block_classes}
    return FSDPStrategy(
        auto_wrap_policy=classes,
        activation_checkpointing_policy=classes if activation_checkpointing else None,
        sharding_strategy=sharding_strategy,
        use_orig_params=True,
        **kwargs,
    )
