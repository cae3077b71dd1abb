"""Gateway adapter: one adapter that aggregates all experts.

A LoRA expert changes a module's weight by ``dW_i = s B_i A_i`` (``s =
lora_alpha / r``).  Methods:

- ``weighted-average`` / ``sum`` (the original FedMoE gateway): average or add
  the A and B matrices separately.  Cheap and rank ``r``, but ``B_g A_g`` is not
  the average of the ``B_i A_i`` (cross terms ``B_i A_j`` appear).
- ``cat``: exact.  Stack ``c_i s A_i`` and ``B_i`` so that ``B_g A_g =
  sum_i c_i dW_i``; rank grows to ``n r`` (adapter size grows ``n`` times).
- ``svd``: the exact ``sum_i c_i dW_i``, truncated back to rank ``gateway.rank``
  by SVD (best rank-k approximation; one SVD per module on every rebuild).
- ``ties`` / ``dare-ties``: TIES (Yadav et al. 2023) or DARE + TIES (Yu et al.
  2023) merging of the ``dW_i`` (trim to ``gateway.density``, elect signs,
  disjoint mean), then SVD to rank ``gateway.rank``; for experts whose updates
  interfere.

The exact methods follow PEFT's ``add_weighted_adapter`` (``cat``, ``svd``,
``ties_svd``, ``dare_ties_svd``), in numpy on the weights alone: the server
never loads the base model, nor torch.  ``svd`` works on the stacked factors
(k x k Gram roots + a small SVD), never on the dense weight change.  Tests check the results
against ``add_weighted_adapter`` on the tiny model and against the dense SVD.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..weights import Weights
from .rules import weighted_average

SUFFIX_A, SUFFIX_B = ".lora_A.weight", ".lora_B.weight"
EXACT_METHODS = ("cat", "svd", "ties", "dare-ties")
GATEWAY_METHODS = (*EXACT_METHODS, "weighted-average", "sum")
GATEWAY_WEIGHTINGS = ("examples", "equal")


@dataclass(frozen=True)
class GatewayAdapter:
    """Merged weights and the LoRA rank / alpha they must be loaded with."""

    weights: Weights
    rank: int
    alpha: int


def gateway_coefficients(examples_seen: Mapping[str, int], weighting: str) -> dict[str, float]:
    """Normalised expert weights; experts that saw no data yet count as one example."""
    if weighting == "equal":
        raw = {name: 1.0 for name in examples_seen}
    elif weighting == "examples":
        raw = {name: float(max(n, 1)) for name, n in examples_seen.items()}
    else:
        raise ValueError(f"unknown gateway weighting {weighting!r}; valid: "
                         f"{', '.join(GATEWAY_WEIGHTINGS)}")
    total = sum(raw.values())
    return {name: v / total for name, v in raw.items()}


def lora_modules(weights: Weights) -> list[str]:
    """Module prefixes that have both a ``lora_A`` and a ``lora_B`` matrix."""
    prefixes = sorted(k.removesuffix(SUFFIX_A) for k in weights if k.endswith(SUFFIX_A))
    missing = [p for p in prefixes if p + SUFFIX_B not in weights]
    if missing or len(prefixes) * 2 != len(weights):
        raise ValueError(f"adapter weights are not LoRA A/B pairs (e.g. {missing[:2]})")
    return prefixes


def delta_weight(weights: Weights, module: str, scaling: float) -> np.ndarray:
    """``s B A`` of one module: the change the adapter makes to its base weight."""
    return scaling * weights[module + SUFFIX_B] @ weights[module + SUFFIX_A]


def build_gateway(experts: Mapping[str, Weights], coefficients: Mapping[str, float],
                  method: str, *, rank: int, alpha: int, svd_rank: int = 0,
                  density: float = 0.5, seed: int = 0) -> GatewayAdapter:
    """Merge expert adapters (all of rank ``rank`` and alpha ``alpha``) into the gateway.

    Parameters
    ----------
    coefficients : mapping
        Expert name -> merge weight (normalised by :func:`gateway_coefficients`).
    svd_rank : int
        Rank of ``svd`` / ``ties`` / ``dare-ties`` gateways (0 = the experts' rank).
    density : float
        Fraction of each update kept by ``ties`` / ``dare-ties``.
    seed : int
        Seeds DARE's random drop, so a gateway version is reproducible.
    """
    names = sorted(experts)
    coeffs = [float(coefficients[n]) for n in names]
    if method == "weighted-average":
        return GatewayAdapter(weighted_average([experts[n] for n in names], coeffs), rank, alpha)
    if method == "sum":
        return GatewayAdapter({k: np.sum([experts[n][k] for n in names], axis=0)
                               .astype(np.float32) for k in experts[names[0]]}, rank, alpha)
    if method not in EXACT_METHODS:
        raise ValueError(f"unknown gateway method {method!r}; valid: "
                         f"{', '.join(GATEWAY_METHODS)}")
    scaling = alpha / rank
    if method == "cat":
        return _cat([experts[n] for n in names], coeffs, scaling)
    return _svd_merge([experts[n] for n in names], coeffs, scaling, method,
                      svd_rank or rank, density, seed)


def _cat(experts: list[Weights], coeffs: list[float], scaling: float) -> GatewayAdapter:
    # PEFT's "cat": A = [c_i s A_i] stacked on rows, B = [B_i] side by side; alpha = rank
    # so the new scaling is 1 and B A = sum_i c_i s B_i A_i exactly.
    out: Weights = {}
    for module in lora_modules(experts[0]):
        out[module + SUFFIX_A] = np.concatenate(
            [c * scaling * e[module + SUFFIX_A] for e, c in zip(experts, coeffs, strict=True)],
            axis=0).astype(np.float32)
        out[module + SUFFIX_B] = np.concatenate(
            [e[module + SUFFIX_B] for e in experts], axis=1).astype(np.float32)
    new_rank = int(out[module + SUFFIX_A].shape[0])  # sum of the experts' ranks
    return GatewayAdapter(out, new_rank, new_rank)


def _svd_merge(experts: list[Weights], coeffs: list[float], scaling: float, method: str,
               new_rank: int, density: float, seed: int) -> GatewayAdapter:
    rng = np.random.default_rng(seed)
    out: Weights = {}
    for module in lora_modules(experts[0]):
        if method == "svd":  # sum_i c_i dW_i is the cat merge: B_cat A_cat, never dense
            b_cat = np.concatenate([e[module + SUFFIX_B] for e in experts], axis=1)
            a_cat = np.concatenate([c * scaling * e[module + SUFFIX_A]
                                    for e, c in zip(experts, coeffs, strict=True)], axis=0)
            b, a = truncated_factors(b_cat, a_cat, new_rank)
        else:
            deltas = np.stack([delta_weight(e, module, scaling) for e in experts])
            merged = ties_merge(deltas, np.asarray(coeffs), density,
                                rng if method == "dare-ties" else None)
            b, a = _truncated_svd(merged.astype(np.float64), new_rank)
        out[module + SUFFIX_A] = a.astype(np.float32)
        out[module + SUFFIX_B] = b.astype(np.float32)
    return GatewayAdapter(out, new_rank, new_rank)


def _truncated_svd(matrix: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """``(B, A)`` with ``B A`` the best rank-``rank`` approximation; zero-padded if smaller."""
    u, s, vh = np.linalg.svd(matrix, full_matrices=False)
    k = min(rank, s.size)
    b, a = u[:, :k] * s[:k], vh[:k]
    if k < rank:  # a module smaller than the rank: pad with zeros
        b = np.pad(b, ((0, 0), (0, rank - k)))
        a = np.pad(a, ((0, rank - k), (0, 0)))
    return b, a


def truncated_factors(b: np.ndarray, a: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Best rank-``rank`` factors of ``b @ a`` without forming it (``b``: (out, k), ``a``: (k, in)).

    With ``b = Q_b R_b`` and ``a^T = Q_a R_a`` (any orthonormal ``Q``), ``b a =
    Q_b (R_b R_a^T) Q_a^T``, so the SVD of the small ``k x k`` core gives that of
    the product.  ``R`` comes from the eigendecomposition of the ``k x k`` Gram
    matrix (``b^T b = R^T R``) and ``Q = b R^+`` is never formed: the factors are
    ``b (R_b^+ U)`` and ``(V^T R_a^{+T}) a``, two thin matrix products.  In float64,
    so squaring the condition number costs nothing at the ``1e-5`` the merges are
    held to (tests compare with the dense SVD); directions whose eigenvalue is
    zero (e.g. LoRA's all-zero initial ``B``) are dropped exactly.  Costs
    ``O((out + in) k^2)`` in BLAS-3 products, about 9x less than a Householder QR.
    """
    b64, a64 = b.astype(np.float64), a.astype(np.float64)
    rb, rb_pinv = _gram_root(b64)
    ra, ra_pinv = _gram_root(a64.T)
    core_b, core_a = _truncated_svd(rb @ ra.T, rank)
    return b64 @ (rb_pinv @ core_b), (core_a @ ra_pinv.T) @ a64


def _gram_root(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``R`` with ``m^T m = R^T R``, and the pseudo-inverse of ``R`` (``m = (m R^+) R``)."""
    s, v = np.linalg.eigh(m.T @ m)
    s = np.clip(s, 0.0, None)
    keep = s > s.max() * 1e-24 if s.size and s.max() > 0 else np.zeros(s.shape, bool)
    root = np.sqrt(s)[:, None] * v.T
    pinv = np.zeros_like(v)
    pinv[:, keep] = v[:, keep] / np.sqrt(s[keep])
    return root, pinv


def ties_merge(deltas: np.ndarray, coeffs: np.ndarray, density: float,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """TIES (Yadav et al. 2023) of stacked updates ``(n, out, in)``; DARE drop when ``rng``.

    As PEFT's ``merge_utils.ties`` / ``dare_ties`` (majority sign by total mass):
    keep each update's top ``density`` fraction by magnitude (DARE: a random
    ``density`` fraction, rescaled by ``1 / density``), elect each entry's sign by
    the sum of the kept values, and average the weighted values that agree with it.
    """
    n = deltas.shape[0]
    flat = deltas.reshape(n, -1)
    if density < 1:
        if rng is None:
            k = int(density * flat.shape[1])
            keep = np.zeros(flat.shape, dtype=bool)
            if k:
                top = np.argpartition(-np.abs(flat), k - 1, axis=1)[:, :k]
                np.put_along_axis(keep, top, True, axis=1)
            flat = flat * keep
        else:
            flat = flat * (rng.random(flat.shape) < density) / density
    sign = np.sign(flat)
    agree = sign == np.where(flat.sum(axis=0) >= 0, 1.0, -1.0)
    weighted = flat * coeffs.reshape(n, 1)
    mixed = (weighted * agree).sum(axis=0) / np.maximum(agree.sum(axis=0), 1)
    return mixed.reshape(deltas.shape[1:])


def gateway_seed(run_seed: int, version: int) -> int:
    """Seed of one gateway build (DARE's random drop)."""
    return zlib.crc32(f"gateway:{run_seed}:{version}".encode())
