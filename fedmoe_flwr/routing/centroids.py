"""What the routers learn from the nodes: ``router.json``.

Every node sends, at registration, the mean base-model embedding of up to
``router.centroid-examples`` of its training prompts (``centroid`` router) and
the hashed character n-gram counts of its training prompts (``ngrams`` router,
:mod:`.ngrams`); no text leaves the node.  The server keeps them per node and
writes, per specialty, the example-weighted mean centroid and the summed
counts to ``router.json`` in the run directory, which ``fedmoe ask`` /
``route-eval`` / ``serve`` read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fedmoe_flwr.config import ConfigError, RouterConfig
from fedmoe_flwr.routing.ngrams import MAX_BUCKETS, NGRAM_SIZES, check_counts
from fedmoe_flwr.routing.router import RouterSources, Scorer

ROUTER_FILE = "router.json"  # in the run directory: what the routers learned from the nodes
MAX_CENTROID_DIM = 65_536  # a hidden size far above any Qwen's (7B: 3584)


def centroid_problem(vec: Any, dims: set[tuple[int, ...]]) -> str | None:
    """Why a centroid is unusable (None = fine): registration's rule, and ``router.json``'s.

    ``dims``: the shapes of the other centroids, which it must share.
    """
    if not isinstance(vec, np.ndarray) or vec.ndim != 1 or not 0 < vec.size <= \
            MAX_CENTROID_DIM or not np.issubdtype(vec.dtype, np.floating) or \
            not np.isfinite(vec).all():
        return f"centroid of shape {getattr(vec, 'shape', None)} is not a finite vector"
    if dims and vec.shape not in dims:
        return f"centroid of shape {vec.shape} differs from the others' {sorted(dims)}"
    with np.errstate(over="ignore"):  # a huge finite vector's length is inf: refused
        length = float(np.linalg.norm(vec.astype(np.float64)))
    if length > 1.0 + 1e-3:
        return (f"centroid of length {length:.3g} is not a mean of unit embeddings "
                f"(at most 1)")
    return None


class CentroidBook:
    """Per-node centroids and their per-specialty means (the content of ``router.json``).

    What a node sends is bounded before any router sees it: a centroid is a
    mean of unit vectors, so one longer than 1 is refused (a finite but huge
    vector would swamp the centring every score goes through); its example
    count weighs it at most ``max_count`` (what a node averages); and a
    node's n-gram total is capped at twice the median of its specialty's
    nodes, so one node cannot drown the others of its specialty.
    """

    def __init__(self, embedding_layer: int, max_count: int = 256) -> None:
        self.embedding_layer = embedding_layer
        self.max_count = max(1, max_count)
        self.by_node: dict[int, tuple[str, np.ndarray, int]] = {}  # node -> (spec, mean, n)
        self.ngrams: dict[int, tuple[str, np.ndarray]] = {}  # node -> (spec, counts)

    def add_ngrams(self, node_id: int, specialty: str, counts: Any) -> str | None:
        """Keep one node's n-gram counts; return why they are unusable instead."""
        sizes = {v.size for _, v in self.ngrams.values()}
        problem = check_counts(counts, next(iter(sizes)) if sizes else None)
        if problem is None:
            self.ngrams[node_id] = (specialty, counts.astype(np.float32))
        return problem

    def add(self, node_id: int, specialty: str, vec: Any, count: Any) -> str | None:
        """Keep one node's centroid; return why it is unusable instead (None = kept)."""
        problem = centroid_problem(vec, {v.shape for _, v, _ in self.by_node.values()})
        if problem:
            return problem
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            return f"centroid example count {count!r} is not a positive integer"
        self.by_node[node_id] = (specialty, vec.astype(np.float32), min(count, self.max_count))
        return None

    def _ngram_sums(self) -> dict[str, np.ndarray]:
        """Per specialty, the nodes' counts summed, each node's total capped (see class)."""
        totals: dict[str, list[float]] = {}
        for specialty, counts in self.ngrams.values():
            totals.setdefault(specialty, []).append(float(counts.sum()))
        sums: dict[str, np.ndarray] = {}
        for specialty, counts in self.ngrams.values():
            cap, total = _capped(totals[specialty]), float(counts.sum())
            scale = min(1.0, cap / total) if total > 0 else 1.0
            sums[specialty] = sums.get(specialty, 0) + counts * np.float32(scale)
        return sums

    def to_json(self) -> dict[str, Any]:
        """The ``router.json`` document: per specialty, centroid, examples and nodes."""
        per: dict[str, dict[str, Any]] = {}
        for specialty, v, n in self.by_node.values():
            entry = per.setdefault(specialty, {"sum": np.zeros_like(v, dtype=np.float64),
                                               "examples": 0, "nodes": 0})
            entry["sum"] = entry["sum"] + n * v
            entry["examples"] += n
            entry["nodes"] += 1
        out = {
            "embedding": f"base model hidden_states[{self.embedding_layer}], mean-pooled over "
                         "the chat-templated prompt, L2-normalised; centroid = "
                         "example-weighted mean over nodes",
            "embedding_layer": self.embedding_layer,
            "specialties": {s: {"centroid": (e["sum"] / e["examples"]).tolist(),
                                "examples": e["examples"], "nodes": e["nodes"]}
                            for s, e in sorted(per.items())},
        }
        if self.ngrams:
            sums = self._ngram_sums()
            counts = next(iter(sums.values()))
            out["ngrams"] = {"sizes": list(NGRAM_SIZES), "buckets": int(counts.size),
                             "hash": "crc32 of the UTF-8 n-gram, modulo buckets",
                             "specialties": {s: {str(i): float(v[i]) for i in np.flatnonzero(v)}
                                             for s, v in sorted(sums.items())}}
        return out


def _capped(totals: list[float]) -> float:
    """The largest n-gram total a node of a specialty may weigh: 2x the median of them."""
    return 2.0 * float(np.median(totals)) if len(totals) >= 3 else float("inf")


def _dense(sparse: Any, buckets: int) -> np.ndarray:
    """One specialty's sparse ``{bucket id: count}`` of ``router.json`` as a count vector."""
    if not isinstance(sparse, dict):
        raise TypeError("must be an object of bucket id -> count")
    vec = np.zeros(buckets, np.float32)
    ids = np.array([int(i) for i in sparse], dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= buckets):
        raise IndexError(f"bucket ids outside [0, {buckets})")
    with np.errstate(all="ignore"):  # a count past float32's range becomes inf: refused
        vec[ids] = np.asarray(list(sparse.values()), dtype=np.float64)
    return vec


def _ngrams_problem(block: Any) -> str | None:
    if not isinstance(block, dict):
        return "field 'ngrams' must be an object"
    buckets = block.get("buckets")
    if not isinstance(buckets, int) or isinstance(buckets, bool) or \
            not 0 < buckets <= MAX_BUCKETS:
        return (f"field 'ngrams.buckets' must be a whole number in [1, {MAX_BUCKETS}], got "
                f"{str(buckets)[:40]!r}")
    specialties = block.get("specialties")
    if not isinstance(specialties, dict):
        return "field 'ngrams.specialties' must be an object"
    for name, sparse in specialties.items():
        try:
            problem = check_counts(_dense(sparse, buckets), buckets)
        except (ValueError, TypeError, IndexError) as err:
            problem = f"{type(err).__name__}: {' '.join(str(err).split())[:80]}"
        if problem:
            return f"field 'ngrams.specialties.{name}': {problem}"
    return None


def router_doc_problem(doc: dict[str, Any]) -> str | None:
    """Why ``router.json`` cannot be routed with (None = fine), naming the field.

    The rules are registration's (:meth:`CentroidBook.add`, :func:`check_counts`): a
    file edited or damaged after the nodes registered gets no more trust than they did.
    """
    specialties = doc.get("specialties", {})
    if not isinstance(specialties, dict):
        return "field 'specialties' must be an object"
    dims: set[tuple[int, ...]] = set()
    for name, entry in specialties.items():
        where = f"field 'specialties.{name}.centroid'"
        try:
            vec = np.asarray(entry["centroid"], dtype=np.float64)
        except (TypeError, KeyError, ValueError, IndexError):
            return f"{where} must be a list of numbers"
        problem = centroid_problem(vec, dims)
        if problem:
            return f"{where}: {problem}"
        dims.add(vec.shape)
    return None if doc.get("ngrams") is None else _ngrams_problem(doc["ngrams"])


def _router_doc(path: Path) -> dict[str, Any]:
    """``router.json``, checked (see :func:`router_doc_problem`); damage is a ConfigError."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise ConfigError(f"{path} is damaged ({type(err).__name__}: {err})") from None
    problem = "a JSON object was expected" if not isinstance(doc, dict) else \
        router_doc_problem(doc)
    if problem:
        raise ConfigError(f"{path} is damaged: {problem}")
    return doc


def load_ngram_counts(run_root: Path) -> dict[str, np.ndarray]:
    """Per-specialty n-gram counts the nodes sent at registration (``router.json``)."""
    path = run_root / ROUTER_FILE
    block = _router_doc(path).get("ngrams") if path.exists() else None
    if block is None:
        raise ConfigError(f"{path} holds no n-gram counts (router.ngram-buckets = 0, or "
                          f"the run is older); use --router centroid, loss or keywords")
    return {s: _dense(sparse, block["buckets"]) for s, sparse in block["specialties"].items()}


def load_centroids(run_root: Path) -> dict[str, np.ndarray]:
    """Per-specialty centroids the nodes sent at registration (``router.json``)."""
    path = run_root / ROUTER_FILE
    if not path.exists():
        raise ConfigError(f"{path} does not exist: the run's nodes sent no centroids "
                          f"(router.centroid-examples = 0, or the run is older); use "
                          f"--router loss or keywords")
    return {s: np.asarray(e["centroid"], dtype=np.float32)
            for s, e in _router_doc(path).get("specialties", {}).items()}


class CentroidScorer(Scorer):
    """Cosine similarity of the prompt's embedding to each specialty's centroid.

    Both are centred on the mean of the centroids first, so the part every
    prompt shares (mean-pooled language-model states have a large common
    component) does not dominate the comparison.
    """

    name = "centroid"

    def __init__(self, cfg: RouterConfig, specialties: list[str],
                 sources: RouterSources) -> None:
        super().__init__(cfg, specialties, sources)
        centroids = sources.need("centroids", self.name)()
        self.embed = sources.need("embed", self.name)
        missing = sorted(set(specialties) - set(centroids))
        if missing:
            raise ConfigError(f"no centroid for {missing} in router.json")
        mat = np.stack([centroids[n] for n in specialties])
        self.mu = mat.mean(axis=0)
        centred = mat - self.mu
        self.centroids = centred / np.linalg.norm(centred, axis=1, keepdims=True).clip(1e-12)

    def scores(self, prompts: list[str]) -> list[dict[str, float]]:
        """The batch embedded at once, then one cosine per specialty."""
        emb = self.embed(prompts) - self.mu
        emb = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(min=1e-12)
        return [dict(zip(self.specialties, row.tolist(), strict=True))
                for row in emb @ self.centroids.T]
