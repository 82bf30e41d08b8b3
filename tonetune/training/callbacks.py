"""Callbacks that Lightning does not ship: parameter counts; a factory for token throughput."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ThroughputMonitor


def token_throughput_monitor(window_size: int = 5) -> ThroughputMonitor:
    """Lightning's ThroughputMonitor counting real (non-padding) tokens as ``train|device/items_per_sec``."""
    return ThroughputMonitor(
        batch_size_fn=lambda batch: batch["input_ids"].shape[0],
        length_fn=lambda batch: int(batch["attention_mask"].sum()),
        window_size=window_size,
    )


class ParameterCount(L.Callback):
    """Logs trainable and total parameter counts once training starts."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Send the counts to every logger."""
        counts = pl_module.parameter_counts()
        counts["params/trainable_pct"] = 100.0 * counts["params/trainable"] / max(counts["params/total"], 1)
        for logger in trainer.loggers:
            logger.log_metrics(counts, step=0)
