"""Chat fine-tuning data (SFT): conversations in, assistant-only labels, dynamically padded batches."""

from __future__ import annotations

from typing import Any

from datasets import DatasetDict
from transformers import DataCollatorForSeq2Seq

from tonetune.data.base import TokenizedData
from tonetune.data.chat import tokenize_conversation
from tonetune.data.loading import load_conversations
from tonetune.models.loss import IGNORE_INDEX
from tonetune.persona import with_system_prompt


class ChatDataModule(TokenizedData):
    """Conversations (OpenAI ``messages`` or question/answer columns); every assistant turn is trained.

    See ``TokenizedData`` for the arguments.
    """

    def load(self) -> DatasetDict:
        """Normalised conversations by split."""
        return load_conversations(self.source, self.columns)

    def encode(self, row: dict[str, Any]) -> dict[str, Any]:
        """input_ids, attention_mask and labels (assistant tokens only)."""
        messages = with_system_prompt(row["messages"], self.system_prompt)
        encoded = tokenize_conversation(self.tokenizer, messages, self.max_length)
        encoded["length"] = len(encoded["input_ids"])
        return encoded

    def keep(self, row: dict[str, Any]) -> bool:
        """Examples that still have an answer token after truncation."""
        return any(label != IGNORE_INDEX for label in row["labels"])

    @property
    def collator(self) -> DataCollatorForSeq2Seq:
        """Pads input_ids/attention_mask with the pad token and labels with -100, per batch."""
        return DataCollatorForSeq2Seq(
            self.tokenizer,
            padding=True,
            label_pad_token_id=IGNORE_INDEX,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """A padded batch."""
        return self.collator(features)
