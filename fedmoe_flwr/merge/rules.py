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
    Computed as ``w + a (w_client - w)`` into one new array per key, with no
    temporaries: at 7B shapes the merge then runs at the speed of a bare
    in-place axpy over the same bytes (``bench/server_cost.py``).
    """
    if mixing == 1.0:  # the update replaces the expert: exactly, not w + (w_client - w)
        return {key: np.array(client[key], dtype=np.float32) for key in current}
    return fedasync_delta(current, client, current, mixing)  # w + a (w_client - w)


def fedasync_delta(current: Weights, client: Weights, base: Weights, mixing: float) -> Weights:
    """Staleness-scaled delta step ``w <- w + a (w_client - w_base)``.

    The alternative to :func:`fedasync_mix` for stale updates: mixing pulls the
    expert part of the way back towards the old base the node trained from
    (``w_client`` carries that base), undoing progress others made since; the
    delta only adds what the node learned, scaled by ``a = alpha * s(tau)``
    (asynchronous SGD with a staleness-dependent step, as FedBuff applies
    deltas).  At ``tau = 0`` the base is the current expert and both rules agree.
    """
    if not 0.0 <= mixing <= 1.0:
        raise ValueError(f"mixing weight must be in [0, 1], got {mixing}")
    out: Weights = {}
    for key, w in current.items():
        step = np.subtract(client[key], base[key], dtype=np.float32)
        step *= np.float32(mixing)
        step += w
        out[key] = step
    return out


def weighted_average(weights: Sequence[Weights], coefficients: Sequence[float]) -> Weights:
    """``sum_i c_i w_i / sum_i c_i``: FedAvg and the weighted-average gateway."""
    if len(weights) != len(coefficients) or not weights:
        raise ValueError("need one coefficient per weight set, and at least one set")
    total = float(sum(coefficients))
    if total <= 0:
        raise ValueError(f"coefficients must sum to a positive value, got {total}")
    return {k: _weighted_sum([w[k] for w in weights], [c / total for c in coefficients])
            for k in weights[0]}


def _weighted_sum(arrays: Sequence[np.ndarray], coefficients: Sequence[float],
                  start: np.ndarray | None = None) -> np.ndarray:
    """``start + sum_i c_i x_i`` in float32, accumulated in one new array."""
    out = (np.array(start, dtype=np.float32) if start is not None
           else np.zeros(np.shape(arrays[0]), np.float32))
    scratch = np.empty_like(out)
    for x, c in zip(arrays, coefficients, strict=True):
        np.multiply(x, np.float32(c), out=scratch, casting="unsafe")
        out += scratch
    return out


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
    factors = [server_lr * s / len(deltas) for s in scales]
    return {key: _weighted_sum([d[key] for d in deltas], factors, start=current[key])
            for key in current}
