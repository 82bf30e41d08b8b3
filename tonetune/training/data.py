"""The data module an objective reads: chat rows, preference pairs or plain text (``Objective.reads``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import hydra

from tonetune.schemas.train import DataConfig
from tonetune.training.objectives import Objective, Reads

CHAT = "tonetune.data.datamodule.ChatDataModule"
READERS = {
    Reads.chat: CHAT,
    Reads.pairs: "tonetune.data.preference.PreferenceDataModule",
    Reads.text: "tonetune.data.corpus.CorpusDataModule",
}


def build_datamodule(data: DataConfig, objective: Objective, **kwargs: Any) -> Any:
    """``data`` instantiated with the reader ``objective`` needs (a custom ``_target_`` is kept)."""
    node = asdict(data)
    if node["_target_"] == CHAT:
        node["_target_"] = READERS[objective.reads]
    return hydra.utils.instantiate(node, **kwargs, **objective.data_options())
