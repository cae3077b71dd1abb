"""FedAsync: staleness-aware asynchronous mixing (Xie, Koyejo, Gupta 2019).

"Asynchronous Federated Optimization", arXiv:1903.03934.  Every update is
merged the moment it arrives::

    w <- (1 - a_t) w + a_t w_client,    a_t = alpha * s(tau)

where ``tau`` (staleness, in expert versions) is how many updates the expert
received since the node's base version, and ``s`` is one of the staleness
functions of :mod:`fedmoe_flwr.staleness` (constant, polynomial, hinge,
exponential).  Slow nodes never block fast ones; their stale updates simply
count less.
"""

from __future__ import annotations

from typing import Any

from fedmoe_flwr.aggregation import Weights, fedasync_mix
from fedmoe_flwr.experts import ExpertState
from fedmoe_flwr.staleness import StalenessFn, make_staleness

from .base import AsyncStrategy, MergeResult


class FedAsync(AsyncStrategy):
    """FedAsync with a pluggable staleness function ``s(tau)``."""

    name = "fedasync"

    def __init__(self, *, staleness_fn: StalenessFn | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        s = self.cfg.strategy
        self.alpha = s.alpha
        self.staleness_fn = staleness_fn or make_staleness(
            s.staleness, a=s.staleness_a, b=s.staleness_b, decay=s.staleness_decay)

    def merge(self, expert: ExpertState, update: Weights, base: Weights, staleness: int,
              num_examples: int) -> MergeResult:
        """Mix the update into the expert with weight ``alpha * s(tau)``."""
        mixing = self.alpha * self.staleness_fn(staleness)
        return MergeResult(fedasync_mix(expert.weights, update, mixing), mixing)
