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
``ties_svd``, ``dare_ties_svd``) and call PEFT's own merge functions, but on
the weights alone: the server never loads the base model.  A test checks the
results against ``add_weighted_adapter`` on the tiny model.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .aggregation import Weights, weighted_average

SUFFIX_A, SUFFIX_B = ".lora_A.weight", ".lora_B.weight"
EXACT_METHODS = ("cat", "svd", "ties", "dare-ties")


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
        raise ValueError(f"unknown gateway weighting {weighting!r}; valid: examples, equal")
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
        raise ValueError(f"unknown gateway method {method!r}; valid: weighted-average, sum, "
                         f"{', '.join(EXACT_METHODS)}")
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
    import torch
    from peft.utils.merge_utils import dare_ties, task_arithmetic, ties

    weights = torch.tensor(coeffs, dtype=torch.float32)
    out: Weights = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in lora_modules(experts[0]):
            deltas = [torch.from_numpy(delta_weight(e, module, scaling).astype(np.float32))
                      for e in experts]
            if method == "svd":
                merged = task_arithmetic(deltas, weights)
            elif method == "ties":
                merged = ties(deltas, weights, density, "total")
            else:
                merged = dare_ties(deltas, weights, density, "total")
            u, s, vh = torch.linalg.svd(merged, full_matrices=False)
            k = min(new_rank, s.numel())
            b = (u[:, :k] * s[:k]).numpy()
            a = vh[:k].numpy()
            if k < new_rank:  # a module smaller than the rank: pad with zeros
                b = np.pad(b, ((0, 0), (0, new_rank - k)))
                a = np.pad(a, ((0, new_rank - k), (0, 0)))
            out[module + SUFFIX_A] = a.astype(np.float32)
            out[module + SUFFIX_B] = b.astype(np.float32)
    return GatewayAdapter(out, new_rank, new_rank)


def gateway_seed(run_seed: int, version: int) -> int:
    """Seed of one gateway build (DARE's random drop)."""
    return zlib.crc32(f"gateway:{run_seed}:{version}".encode())
