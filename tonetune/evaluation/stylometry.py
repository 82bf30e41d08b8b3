"""A topic-blind tone reader: character n-grams and function words, content words masked.

Each content word becomes its shape (``w5``: a 5-letter lower-case word, ``C4``: capitalised, ``U3``:
upper case, ``0``: a number), as in POSNoise-style topic masking; function words (including the
archaic ``thou``, ``hath``), punctuation and symbols are kept. What is left is how the persona
writes, not what it writes about, so this reader is independent of the embedding readers; the
report gives their agreement.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import VotingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from tonetune.evaluation.classifier import ToneClassifier
from tonetune.models.embeddings import embed

_FUNCTION_WORDS = """
    a about above after again against all am an and any are aren't as at be because been before being
    below between both but by can cannot could did do does doing don't down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is isn't it
    it's its itself just let's me more most my myself no nor not now of off on once only or other ought
    our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves yes oh
    also even ever never always often still yet perhaps maybe must may might shall
    thee thou thy thine hath doth art tis ye thus nay aye hence whence thence ere"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())
_TOKEN = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)


def mask_content(text: str) -> str:
    """``text`` with every content word replaced by its shape; function words and symbols kept."""
    return " ".join(_masked(token) for token in _TOKEN.findall(text))


def _masked(token: str) -> str:
    lower = token.lower()
    if lower in FUNCTION_WORDS or not re.match(r"\w", token):
        return lower if re.match(r"\w", token) else token
    if token.isdigit():
        return "0"
    shape = "U" if token.isupper() and len(token) > 1 else "C" if token[0].isupper() else "w"
    return f"{shape}{min(len(token), 9)}"


@dataclass
class StylometricClassifier(ToneClassifier):
    """Logistic regression on TF-IDF character n-grams and word n-grams of the masked text."""

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """The masked texts (the n-grams are counted inside the model, so each fold learns its own)."""
        source = [self.transform(t) for t in texts] if self.transform else list(texts)
        return np.array([mask_content(t) for t in source], dtype=object)

    def estimator(self) -> Pipeline:
        """Character 2-4-grams within words and word 1-2-grams of the masked text, then a regression."""
        return make_pipeline(grams(), LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced"))


def grams() -> FeatureUnion:
    """TF-IDF of character 2-4-grams within words and of word 1-2-grams (masked text in)."""
    return FeatureUnion(
        [
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True)),
            ("words", TfidfVectorizer(token_pattern=r"\S+", ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
        ]
    )


@dataclass
class BlendedClassifier(StylometricClassifier):
    """The mean of two readers' probabilities: MiniLM embeddings and the stylometric n-grams.

    Used for the marker-blind reader: once emojis and hashtags are gone, some persona answers are
    jokes the embedding reads as plain (it read 41 of 48 held-out GPT-4 Elon answers), and how
    they are written (short, punchy, rhetorical questions) is left for the n-grams to see (45 of 48
    together, with no other persona's answer taken for Elon's).
    """

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text: its masked text, then its embedding (384 columns)."""
        source = [self.transform(t) for t in texts] if self.transform else list(texts)
        return blend_features(embed(source), source)

    def estimator(self) -> VotingClassifier:
        """A soft vote of a regression on the embedding columns and the stylometric one on the text."""
        embedding = make_pipeline(
            ColumnTransformer([("embedding", StandardScaler(), slice(1, None))]),
            LogisticRegression(max_iter=2000, class_weight="balanced"),
        )
        style = make_pipeline(
            ColumnTransformer([("text", grams(), 0)]),
            LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced"),
        )
        return VotingClassifier([("embedding", embedding), ("style", style)], voting="soft")


def blend_features(vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """``BlendedClassifier``'s rows from embeddings already computed and the (unmasked) texts."""
    rows = np.empty((len(texts), vectors.shape[1] + 1), dtype=object)
    rows[:, 0] = [mask_content(t) for t in texts]
    rows[:, 1:] = vectors
    return rows
