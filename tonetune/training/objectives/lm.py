"""Self-supervised LM: next-token loss on every token of a plain-text corpus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tonetune.training.objectives.base import Reads
from tonetune.training.objectives.sft import SFT, SFTConfig


@dataclass
class LMConfig(SFTConfig):
    """Continued pre-training on the persona's own writing."""

    name: str = "lm"
    pack: bool = True
    """Pack documents into ``data.max_length`` sequences (no padding)."""


class LM(SFT):
    """SFT's loss; the corpus labels every token."""

    Config = LMConfig
    reads = Reads.text

    def data_options(self) -> dict[str, Any]:
        """The corpus packs documents when ``pack`` is set."""
        return {"pack": self.config.pack}
