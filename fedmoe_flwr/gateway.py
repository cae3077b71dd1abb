"""Gateway adapter: one adapter that aggregates all experts (pure numpy).

The two modes of the original FedMoE gateway, applied matrix by matrix to
LoRA's A and B:

- ``weighted-average``: ``A_g = sum_i c_i A_i``, ``B_g = sum_i c_i B_i`` with
  ``c`` normalised (by examples seen, or equal);
- ``sum``: ``A_g = sum_i A_i``, ``B_g = sum_i B_i``.

Both are approximations in weight-update space: ``B_g A_g`` is not the
average of the experts' ``B_i A_i`` (cross terms appear).  Exact merges are
the [adapters] issue's work.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .aggregation import Weights, weighted_average


def gateway_coefficients(examples_seen: Mapping[str, int], weighting: str) -> dict[str, float]:
    """Normalised expert weights; experts that saw no data yet count as one example."""
    if weighting == "equal":
        raw = {name: 1.0 for name in examples_seen}
    elif weighting == "examples":
        raw = {name: float(max(n, 1)) for name, n in examples_seen.items()}
    else:
        raise ValueError(f"unknown gateway weighting {weighting!r}; valid: examples, equal")
    total = sum(raw.values())
    return {name: v / total for name, v in raw.items()}


def build_gateway(experts: Mapping[str, Weights], coefficients: Mapping[str, float],
                  method: str) -> Weights:
    """Merge expert adapters into the gateway adapter."""
    names = sorted(experts)
    if method == "weighted-average":
        return weighted_average([experts[n] for n in names], [coefficients[n] for n in names])
    if method == "sum":
        return {k: np.sum([experts[n][k] for n in names], axis=0).astype(np.float32)
                for k in experts[names[0]]}
    raise ValueError(f"unknown gateway method {method!r}; valid: weighted-average, sum")
