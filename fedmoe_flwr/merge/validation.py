"""Validation of incoming updates before they touch an expert (pure numpy).

A malformed update must be rejected with a reason a person can act on and
must leave the expert untouched; the strategies count reasons per node.
"""

from __future__ import annotations

import math

import numpy as np

from ..weights import Weights


class UpdateRejected(ValueError):
    """An update failed validation; ``reason`` is a short countable label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_weights(reference: Weights, update: Weights) -> None:
    """Raise :class:`UpdateRejected` unless ``update`` is shaped and typed like ``reference``.

    Same keys and shapes, floating dtypes, and only values finite in float32.
    """
    missing = sorted(set(reference) - set(update))
    extra = sorted(set(update) - set(reference))
    if missing or extra:
        raise UpdateRejected("wrong-keys", f"{len(missing)} missing (e.g. {missing[:2]}), "
                             f"{len(extra)} unexpected (e.g. {extra[:2]})")
    for key, ref in reference.items():
        arr = update[key]
        if not isinstance(arr, np.ndarray) or arr.shape != ref.shape:
            raise UpdateRejected("wrong-shape", f"{key}: {getattr(arr, 'shape', arr)} != "
                                 f"expected {ref.shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise UpdateRejected("wrong-dtype", f"{key}: dtype {arr.dtype} is not floating point")
        # One pass, in the dtype the expert keeps: a float64 1e300 becomes inf in float32,
        # NaN stays NaN; float32 arrays (the wire format) are checked without a copy.
        with np.errstate(over="ignore", invalid="ignore"):
            as32 = arr if arr.dtype == np.float32 else arr.astype(np.float32)
            if not np.isfinite(as32).all():
                raise UpdateRejected("non-finite", f"{key}: contains NaN or Inf (in float32)")


def validate_update(reference: Weights, update: Weights, *, base_version: int,
                    current_version: int) -> None:
    """Raise :class:`UpdateRejected` unless ``update`` can be merged into ``reference``.

    Checks, in order: version not from the future, identical key set, shapes,
    float dtypes, and finite values.
    """
    if base_version > current_version or base_version < 0:
        raise UpdateRejected("bad-version", f"base version {base_version} but the expert is "
                             f"at version {current_version}")
    check_weights(reference, update)


def update_norm_ratio(update: Weights, base: Weights, current: Weights) -> float:
    """``||update - base|| / max(||current||, 1)``: how large a change is, relative.

    The norm bound of robust aggregation (Sun et al. 2019, "Can you really
    backdoor federated learning?") scaled by the expert, so one default fits
    adapters of any size; the floor of 1 keeps a near-zero expert (all-zero
    initial weights) from making every update look infinitely large.
    Per key, in float32 with a float64 total (a key's difference is small
    enough to stay in cache); a key whose float32 sum of squares overflows is
    recomputed in float64, so 1e30 is measured, not turned into Inf.
    """
    delta = sum(_squared_norm(update[k], base[k]) for k in update)
    size = sum(_squared_norm(current[k]) for k in current)
    return float(np.sqrt(delta) / max(np.sqrt(size), 1.0))


def _squared_norm(x: np.ndarray, minus: np.ndarray | None = None) -> float:
    """``||x - minus||^2`` (or ``||x||^2``) as a Python float."""
    with np.errstate(over="ignore", invalid="ignore"):
        d = (np.subtract(x, minus, dtype=np.float32) if minus is not None
             else np.asarray(x, dtype=np.float32)).reshape(-1)
        total = float(np.dot(d, d))
    if math.isfinite(total):
        return total
    d64 = np.asarray(x, np.float64) - (minus if minus is not None else 0.0)
    return float(np.sum(d64.reshape(-1) ** 2))
