"""Server-side merge rules over adapter weights (pure numpy, no flwr).

Weights are ``dict[str, np.ndarray]`` keyed by PEFT adapter keys; every
function returns new arrays and never mutates its inputs, so a rejected or
failed merge cannot leave an expert half-updated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..weights import Weights


def fedasync_mix(current: Weights, client: Weights, mixing: float) -> Weights:
    """FedAsync update ``w <- (1 - a) w + a w_client`` (Xie et al. 2019).

    ``mixing`` is ``a_t = alpha * s(tau)``, already scaled for staleness.
    """
    if not 0.0 <= mixing <= 1.0:
        raise ValueError(f"mixing weight must be in [0, 1], got {mixing}")
    return {k: ((1.0 - mixing) * current[k] + mixing * client[k]).astype(np.float32, copy=False)
            for k in current}


def weighted_average(weights: Sequence[Weights], coefficients: Sequence[float]) -> Weights:
    """``sum_i c_i w_i / sum_i c_i``: FedAvg and the weighted-average gateway."""
    if len(weights) != len(coefficients) or not weights:
        raise ValueError("need one coefficient per weight set, and at least one set")
    total = float(sum(coefficients))
    if total <= 0:
        raise ValueError(f"coefficients must sum to a positive value, got {total}")
    return {k: (sum(c * w[k] for w, c in zip(weights, coefficients, strict=True)) / total)
            .astype(np.float32, copy=False) for k in weights[0]}


def fedbuff_staleness_weight(staleness: int) -> float:
    """FedBuff's down-weighting of a stale delta: ``1 / sqrt(1 + tau)``."""
    return 1.0 / float(np.sqrt(1.0 + staleness))


def fedbuff_apply(current: Weights, deltas: Sequence[Weights], scales: Sequence[float],
                  server_lr: float) -> Weights:
    """FedBuff server step (Nguyen et al. 2022): ``w <- w + eta_g * mean_i(s_i * delta_i)``.

    ``deltas`` are client weights minus the weights each client started from;
    ``scales`` are their staleness weights.
    """
    if not deltas or len(deltas) != len(scales):
        raise ValueError("need at least one delta and one scale per delta")
    k = len(deltas)
    return {key: (current[key] + server_lr * sum(s * d[key] for d, s in
                                                 zip(deltas, scales, strict=True)) / k)
            .astype(np.float32, copy=False) for key in current}
