"""The data module an objective reads: chat rows (sft), preference pairs (dpo, orpo), plain text (lm)."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from tonetune.schemas import ObjectiveConfig, ObjectiveKind

CHAT = "tonetune.data.datamodule.ChatDataModule"
READERS = {
    ObjectiveKind.sft: CHAT,
    ObjectiveKind.dpo: "tonetune.data.preference.PreferenceDataModule",
    ObjectiveKind.orpo: "tonetune.data.preference.PreferenceDataModule",
    ObjectiveKind.lm: "tonetune.data.corpus.CorpusDataModule",
}


def build_datamodule(data: DictConfig, objective: ObjectiveConfig, **kwargs: Any) -> Any:
    """``data`` instantiated with the reader ``objective`` needs (a custom ``_target_`` is kept)."""
    node = data
    if data.get("_target_") == CHAT and READERS[objective.kind] != CHAT:
        node = OmegaConf.merge(data, {"_target_": READERS[objective.kind]})
    if objective.kind == ObjectiveKind.lm:
        kwargs["pack"] = objective.pack
    return hydra.utils.instantiate(node, **kwargs)
