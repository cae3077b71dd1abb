"""Validation of incoming updates before they touch an expert (pure numpy).

A malformed update must be rejected with a reason a person can act on and
must leave the expert untouched; the strategies count reasons per node.
"""

from __future__ import annotations

import numpy as np

from .aggregation import Weights


class UpdateRejected(ValueError):
    """An update failed validation; ``reason`` is a short countable label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def validate_update(reference: Weights, update: Weights, *, specialty: str,
                    known_specialties: set[str] | frozenset[str], base_version: int,
                    current_version: int) -> None:
    """Raise :class:`UpdateRejected` unless ``update`` can be merged into ``reference``.

    Checks, in order: known specialty, version not from the future, identical
    key set, shapes, float dtypes, and finite values.
    """
    if specialty not in known_specialties:
        raise UpdateRejected("unknown-specialty", f"{specialty!r} is not one of "
                             f"{sorted(known_specialties)}")
    if base_version > current_version or base_version < 0:
        raise UpdateRejected("bad-version", f"base version {base_version} but {specialty} is "
                             f"at version {current_version}")
    missing = sorted(set(reference) - set(update))
    extra = sorted(set(update) - set(reference))
    if missing or extra:
        raise UpdateRejected("wrong-keys", f"{len(missing)} missing (e.g. {missing[:2]}), "
                             f"{len(extra)} unexpected (e.g. {extra[:2]})")
    for key, ref in reference.items():
        arr = update[key]
        if arr.shape != ref.shape:
            raise UpdateRejected("wrong-shape", f"{key}: {arr.shape} != expected {ref.shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise UpdateRejected("wrong-dtype", f"{key}: dtype {arr.dtype} is not floating point")
        if not np.isfinite(arr).all():
            raise UpdateRejected("non-finite", f"{key}: contains NaN or Inf")
