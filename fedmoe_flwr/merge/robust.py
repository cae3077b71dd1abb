"""Robust aggregation math: how an update relates to its expert; averages that resist liars.

A registered node that lies can send an update that passes every check of
form (keys, shapes, finite, under the norm bound) and still wipes or poisons
an expert: all zeros, the sign of an honest change flipped, an honest change
rescaled, an old version replayed.  What gives such updates away is how they
relate to the expert and to what honest nodes did:

- :func:`keep_ratio`: how much of the expert's norm survives the update (an
  all-zero update keeps none);
- :func:`cosine` of the update's change with the direction the expert has
  recently moved (a sign flip or a replay points against it);
- the change's norm against the median of recent accepted changes (a rescaled
  change stands out; see ``fedmoe_flwr.server.guard``).

For buffered and synchronous merges, :func:`robust_average` replaces the
mean by a coordinate-wise trimmed mean or median (Yin et al. 2018,
"Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..weights import Weights

AGGREGATES = ("mean", "trimmed-mean", "median")


def dot(a: Weights, b: Weights) -> float:
    """``<a, b>`` over every key, accumulated in float64."""
    return float(sum(np.dot(np.asarray(a[k], np.float32).reshape(-1),
                            np.asarray(b[k], np.float32).reshape(-1)).astype(np.float64)
                     for k in a))


def norm(a: Weights) -> float:
    """``||a||`` over every key."""
    return math.sqrt(max(dot(a, a), 0.0))


def cosine(a: Weights, b: Weights) -> float | None:
    """Cosine of two weight sets; None when either is zero (no direction to compare)."""
    na, nb = norm(a), norm(b)
    if na == 0.0 or nb == 0.0:
        return None
    return dot(a, b) / (na * nb)


def difference(a: Weights, b: Weights) -> Weights:
    """``a - b`` as new float32 arrays."""
    return {k: np.subtract(a[k], b[k], dtype=np.float32) for k in a}


def keep_ratio(current: Weights, delta: Weights) -> float:
    """``||current + delta|| / ||current||``: the share of the expert an update leaves.

    1 for a zero expert (nothing to erase).
    """
    size = norm(current)
    if size == 0.0:
        return 1.0
    return norm({k: current[k] + delta[k] for k in current}) / size


def ema(previous: Weights | None, delta: Weights, decay: float) -> Weights:
    """Exponential moving average of changes: ``decay * previous + (1 - decay) * delta``."""
    if previous is None:
        return {k: np.array(v, np.float32) for k, v in delta.items()}
    return {k: np.float32(decay) * previous[k] + np.float32(1 - decay) * delta[k]
            for k in delta}


def _trimmed(stack: np.ndarray, trim: float) -> np.ndarray:
    k = int(math.floor(trim * stack.shape[0]))
    if k == 0 or stack.shape[0] - 2 * k < 1:
        return stack.mean(axis=0)
    ordered = np.sort(stack, axis=0)
    return ordered[k:stack.shape[0] - k].mean(axis=0)


def robust_average(weights: Sequence[Weights], coefficients: Sequence[float], method: str,
                   trim: float = 0.2) -> Weights:
    """A weighted ``mean`` of weight sets, or a per-coordinate ``trimmed-mean`` / ``median``.

    The robust methods ignore ``coefficients`` (a node that lies about its
    example count must not buy weight) and drop, per coordinate, the
    ``trim`` share of the largest and of the smallest values (``median``:
    all but the middle).  With one or two sets they equal the plain mean.
    """
    if method not in AGGREGATES:
        raise ValueError(f"unknown aggregate {method!r}; valid: {AGGREGATES}")
    if not weights or len(weights) != len(coefficients):
        raise ValueError("need one coefficient per weight set, and at least one set")
    if method == "mean" or len(weights) < 3:
        total = float(sum(coefficients))
        if total <= 0:
            raise ValueError(f"coefficients must sum to a positive value, got {total}")
        return {k: sum(np.float32(c / total) * w[k] for w, c in
                       zip(weights, coefficients, strict=True)).astype(np.float32)
                for k in weights[0]}
    out: Weights = {}
    for key in weights[0]:
        stack = np.stack([np.asarray(w[key], np.float32) for w in weights])
        out[key] = (np.median(stack, axis=0) if method == "median"
                    else _trimmed(stack, trim)).astype(np.float32)
    return out
