"""FedAsync: staleness-aware asynchronous mixing (Xie, Koyejo, Gupta 2019).

"Asynchronous Federated Optimization", arXiv:1903.03934.  Every update is
merged the moment it arrives::

    w <- (1 - a_t) w + a_t w_client,    a_t = alpha * s(tau)

where ``tau`` (staleness, in expert versions) is how many updates the expert
received since the node's base version, and ``s`` is one of the staleness
functions of :mod:`fedmoe_flwr.merge.staleness` (constant, polynomial, hinge,
exponential).  Slow nodes never block fast ones; their stale updates simply
count less.

Fresh updates (``tau = 0``: no other node of the specialty contributed since
the node's base version, so there is nothing to reconcile) are mixed with
``strategy.fresh-alpha`` (default 1: the update counts fully).  With one node
per specialty, FedAsync's ``alpha < 1`` would otherwise throw away part of
every update the lone node makes (``w + alpha * delta``), which is what kept
a lone slow node from ever reaching FedAvg's target in the async-vs-sync
benchmark.  Set it equal to ``strategy.alpha`` for the paper's rule.

Stale updates (``tau > 0``) enter by ``strategy.stale-rule``: ``delta`` (the
default) adds only what the node learned, ``w <- w + a_t (w_client - w_base)``,
so a slow node's old base does not pull the expert back by ``a_t`` towards
where it was ``tau`` versions ago (see
:func:`fedmoe_flwr.merge.rules.fedasync_delta`); ``mix`` is the paper's rule
above.  Default by measurement: in every two-nodes-per-specialty run of the
async-vs-sync benchmark ``delta`` reached FedAvg's target as fast or faster
(0.32-0.39x of FedAvg's time against 0.35-0.44x for ``mix``, three runs).
"""

from __future__ import annotations

from typing import Any

from fedmoe_flwr.merge.rules import fedasync_delta, fedasync_mix
from fedmoe_flwr.merge.staleness import StalenessFn, make_staleness
from fedmoe_flwr.weights import Weights

from .base import Outcome, Strategy, Update


class FedAsync(Strategy):
    """FedAsync with a pluggable staleness function ``s(tau)``."""

    name = "fedasync"

    def __init__(self, cfg: Any, *, staleness_fn: StalenessFn | None = None,
                 **kwargs: Any) -> None:
        super().__init__(cfg, **kwargs)
        self.staleness_fn = staleness_fn or make_staleness(
            cfg.staleness, a=cfg.staleness_a, b=cfg.staleness_b, decay=cfg.staleness_decay)

    def on_update(self, update: Update, current: Weights, now: float) -> Outcome:
        """Merge the update: ``fresh_alpha`` at tau 0, else ``alpha * s(tau)`` by the stale rule."""
        if update.staleness == 0:
            mixing = self.cfg.fresh_alpha
        else:
            mixing = self.cfg.alpha * self.staleness_fn(update.staleness)
            if self.cfg.stale_rule == "delta":
                return Outcome(fedasync_delta(current, update.weights, update.base, mixing),
                               mixing)
        return Outcome(fedasync_mix(current, update.weights, mixing), mixing)
