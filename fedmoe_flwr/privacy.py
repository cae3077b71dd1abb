"""Local differential privacy of updates, and the accountant that says what it spent.

What is protected (``privacy.*``): each node clips the change its update makes
(the delta from the weights it received) to L2 norm ``C = privacy.clip`` and
adds Gaussian noise of standard deviation ``z C`` (``z =
privacy.noise-multiplier``) to every coordinate *before* the update leaves the
machine (local DP: nobody downstream, the server included, sees the clean
update).  The unit protected is the node's whole dataset as one update sees
it: two datasets of a node can move its clipped update by at most ``C``
(add/remove adjacency, as user-level DP-FedAvg, McMahan et al. 2018), so each
update is a Gaussian mechanism with sensitivity ``C`` and noise ``z C``.

What is not: single examples inside a node get no better guarantee than the
whole dataset (this is not per-example DP-SGD), and the reported epsilon
assumes the adjacency above; noise added by the node is the only noise.

Accounting: ``T`` Gaussian mechanisms of sensitivity 1 and noise ``z`` compose
exactly into one with ``mu = sqrt(T) / z`` (Gaussian DP, Dong, Roth & Su 2019),
whose tight (epsilon, delta) curve is ``delta(eps) = Phi(-eps/mu + mu/2) -
e^eps Phi(-eps/mu - mu/2)`` (Balle & Wang 2018, Theorem 8).  No subsampling
amplification is claimed (every update uses the node's data).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .weights import Weights

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def privatize(delta: Weights, clip: float, noise_multiplier: float,
              rng: np.random.Generator) -> tuple[Weights, float]:
    """Clip ``delta`` to L2 norm ``clip`` and add N(0, (noise_multiplier * clip)^2) noise.

    Returns the private delta and the norm before clipping (for the node's log).
    ``rng`` must not be derived from anything the server knows (use OS entropy),
    or the server could subtract the noise.
    """
    norm = math.sqrt(sum(float(np.dot(v.reshape(-1).astype(np.float64),
                                      v.reshape(-1).astype(np.float64))) for v in delta.values()))
    factor = min(1.0, clip / norm) if norm > 0 else 1.0
    std = noise_multiplier * clip
    out = {}
    for key, value in delta.items():
        noisy = value.astype(np.float32) * np.float32(factor)
        if std > 0:
            noisy += rng.normal(0.0, std, value.shape).astype(np.float32)
        out[key] = noisy
    return out, norm


def clip(delta: Weights, bound: float) -> tuple[Weights, float]:
    """``delta`` scaled to L2 norm at most ``bound``; and its norm before."""
    norm = math.sqrt(sum(float(np.dot(v.reshape(-1).astype(np.float64),
                                      v.reshape(-1).astype(np.float64))) for v in delta.values()))
    factor = np.float32(min(1.0, bound / norm) if norm > 0 else 1.0)
    return {k: v.astype(np.float32) * factor for k, v in delta.items()}, norm


def noisy_sum(deltas: list[Weights], std: float, rng: np.random.Generator) -> Weights:
    """``sum_i delta_i + N(0, std^2)`` per coordinate: one release of central DP.

    The deltas are already clipped (each node's contribution bounded by the
    clip), so the sum's sensitivity is one clip per node in it.
    """
    out = {k: np.sum([d[k] for d in deltas], axis=0, dtype=np.float32) for k in deltas[0]}
    if std > 0:
        for value in out.values():
            value += rng.normal(0.0, std, value.shape).astype(np.float32)
    return out


def log_phi(x: float) -> float:
    """``log Phi(x)`` of the standard normal CDF, accurate far into the lower tail."""
    if x > -30:
        return math.log(0.5 * math.erfc(-x / math.sqrt(2)))
    # asymptotic series of Mills' ratio: Phi(x) ~ phi(x)/|x| (1 - 1/x^2 + 3/x^4 - 15/x^6)
    x2 = x * x
    return -x2 / 2 - math.log(-x) - _LOG_SQRT_2PI + math.log1p(-1 / x2 + 3 / x2**2 - 15 / x2**3)


def gdp_delta(epsilon: float, mu: float) -> float:
    """``delta(epsilon)`` of a mu-GDP mechanism (Balle & Wang 2018; Dong et al. 2019)."""
    a = -epsilon / mu + mu / 2
    b = -epsilon / mu - mu / 2
    return math.exp(log_phi(a)) - math.exp(epsilon + log_phi(b))


@functools.lru_cache(maxsize=4096)  # the server asks again for every dispatch decision
def epsilon_spent(updates: int, noise_multiplier: float, delta: float) -> float:
    """Epsilon at ``delta`` after ``updates`` releases with noise ``noise_multiplier`` (exact).

    0 for no release; ``inf`` without noise.  Solved by bisection on the
    decreasing ``delta(epsilon)`` curve to a relative 1e-9.
    """
    if updates <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    return epsilon_of_mu(math.sqrt(updates) / noise_multiplier, delta)


@functools.lru_cache(maxsize=4096)
def epsilon_of_mu(mu: float, delta: float) -> float:
    """Epsilon at ``delta`` of a mu-GDP mechanism (0 for mu = 0)."""
    if mu <= 0:
        return 0.0
    if gdp_delta(0.0, mu) <= delta:
        return 0.0
    lo, hi = 0.0, 1.0
    while gdp_delta(hi, mu) > delta:
        lo, hi = hi, hi * 2
        if hi > 1e7:
            return math.inf
    while hi - lo > 1e-9 * max(hi, 1e-12):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gdp_delta(mid, mu) > delta else (lo, mid)
    return hi


def noise_for_epsilon(epsilon: float, updates: int, delta: float) -> float:
    """The smallest noise multiplier with ``epsilon_spent(updates, z, delta) <= epsilon``."""
    lo, hi = 1e-3, 1.0
    while epsilon_spent(updates, hi, delta) > epsilon:
        lo, hi = hi, hi * 2
    while hi - lo > 1e-6 * hi:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if epsilon_spent(updates, mid, delta) <= epsilon else (mid, hi)
    return hi
