"""The ``ngrams`` router: character n-gram statistics of each domain's prompts.

Every node counts the character 3-, 4- and 5-grams of the words in its training
prompts, hashed into ``router.ngram-buckets`` buckets, and sends that one count
vector at registration (no text leaves the node; see the privacy note below).
The server sums the vectors per specialty into ``router.json``; the router is
multinomial naive Bayes over them: a prompt's score for a specialty is the
mean log-probability of its n-grams under that specialty's counts (add-1/2
smoothing).

Why character n-grams: prompts people write share stems and pieces of words
with a domain's training prompts ("quer", "join", "docstr", "list") more often
than whole words or the tokenizer's pieces, and need no model at all, so the
router does not depend on how much the base model knows (the tiny embedded
model knows nothing; its embeddings are random).  On the hand-written prompts
of ``data/eval/`` it routes far better than the embedding centroid.

Privacy: counts of hashed n-grams reveal which words a node's prompts use to
anyone who hashes a dictionary; set ``router.ngram-buckets = 0`` on runs
where that matters (the centroid, a mean embedding, says less).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping

import numpy as np

from fedmoe_flwr.config import ConfigError, RouterConfig
from fedmoe_flwr.routing.router import RouterSources, Scorer

NGRAM_SIZES = (3, 4, 5)
SMOOTHING = 0.5
MAX_BUCKETS = 1 << 22
_PIECES = re.compile(r"[a-z0-9_]+|[^\sa-z0-9_]")


def ngrams(text: str) -> list[str]:
    """The character n-grams of each word of ``text`` (lower-cased, with word boundaries)."""
    out = []
    for piece in _PIECES.findall(text.lower()):
        word = f"<{piece}>"
        for n in NGRAM_SIZES:
            out.extend(word[i:i + n] for i in range(max(1, len(word) - n + 1)))
    return out


def ngram_ids(text: str, buckets: int) -> np.ndarray:
    """Bucket ids of ``text``'s n-grams (CRC-32, so every machine hashes alike)."""
    return np.fromiter((zlib.crc32(g.encode()) % buckets for g in ngrams(text)), dtype=np.int64)


def ngram_counts(texts: Iterable[str], buckets: int) -> np.ndarray:
    """Summed n-gram counts of ``texts``: what a node sends."""
    counts = np.zeros(buckets, np.float32)
    for text in texts:
        np.add.at(counts, ngram_ids(text, buckets), 1.0)
    return counts


def check_counts(vec: object, buckets: int | None) -> str | None:
    """Why a node's count vector is unusable (None = fine)."""
    if not isinstance(vec, np.ndarray) or vec.ndim != 1 or not 0 < vec.size <= MAX_BUCKETS:
        return f"n-gram counts of shape {getattr(vec, 'shape', None)} are not a vector"
    if buckets is not None and vec.size != buckets:
        return f"n-gram counts have {vec.size} buckets, the others {buckets}"
    if not np.issubdtype(vec.dtype, np.floating) or not np.isfinite(vec).all() or \
            (vec < 0).any():
        return "n-gram counts must be finite and non-negative"
    return None


class NgramModel:
    """Per-specialty log-probabilities of n-gram buckets, and prompt scores."""

    def __init__(self, counts: Mapping[str, np.ndarray]) -> None:
        self.names = sorted(counts)
        mat = np.stack([np.asarray(counts[n], np.float64) for n in self.names])
        self.buckets = mat.shape[1]
        self.log_p = np.log((mat + SMOOTHING) /
                            (mat.sum(axis=1, keepdims=True) + SMOOTHING * self.buckets))

    def scores(self, prompt: str) -> dict[str, float]:
        """Mean log-probability per n-gram of ``prompt`` under each specialty."""
        ids = ngram_ids(prompt, self.buckets)
        if ids.size == 0:
            return dict.fromkeys(self.names, 0.0)
        means = self.log_p[:, ids].mean(axis=1)
        return dict(zip(self.names, means.tolist(), strict=True))


class NgramScorer(Scorer):
    """Naive Bayes over the per-specialty n-gram counts the nodes sent."""

    name = "ngrams"

    def __init__(self, cfg: RouterConfig, specialties: list[str],
                 sources: RouterSources) -> None:
        super().__init__(cfg, specialties, sources)
        counts = sources.need("ngram_counts", self.name)()
        missing = sorted(set(specialties) - set(counts))
        if missing:
            raise ConfigError(f"no n-gram counts for {missing} in router.json")
        self.model = NgramModel({n: counts[n] for n in specialties})

    def scores(self, prompts: list[str]) -> list[dict[str, float]]:
        """Mean log-probability per n-gram of each prompt under each specialty."""
        return [self.model.scores(p) for p in prompts]
