"""The data module an objective reads: chat rows, preference pairs or plain text (``Objective.reads``)."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from tonetune.training.objectives import Objective, Reads

CHAT = "tonetune.data.datamodule.ChatDataModule"
READERS = {
    Reads.chat: CHAT,
    Reads.pairs: "tonetune.data.preference.PreferenceDataModule",
    Reads.text: "tonetune.data.corpus.CorpusDataModule",
}


def build_datamodule(data: DictConfig, objective: Objective, **kwargs: Any) -> Any:
    """``data`` instantiated with the reader ``objective`` needs (a custom ``_target_`` is kept)."""
    node = data
    if data.get("_target_") == CHAT and READERS[objective.reads] != CHAT:
        node = OmegaConf.merge(data, {"_target_": READERS[objective.reads]})
    return hydra.utils.instantiate(node, **kwargs, **objective.data_options())
