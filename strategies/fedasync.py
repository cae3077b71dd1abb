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
``strategy.fedasync.fresh-alpha`` (default 1: the update counts fully).  With one node
per specialty, FedAsync's ``alpha < 1`` would otherwise throw away part of
every update the lone node makes (``w + alpha * delta``), which is what kept
a lone slow node from ever reaching FedAvg's target in the async-vs-sync
benchmark.  Set it equal to ``strategy.fedasync.alpha`` for the paper's rule.

Stale updates (``tau > 0``) enter by ``strategy.fedasync.stale-rule``: ``delta`` (the
default) adds only what the node learned, ``w <- w + a_t (w_client - w_base)``,
so a slow node's old base does not pull the expert back by ``a_t`` towards
where it was ``tau`` versions ago (see
:func:`fedmoe_flwr.merge.rules.fedasync_delta`); ``mix`` is the paper's rule
above.  Default by measurement: in every two-nodes-per-specialty run of the
async-vs-sync benchmark ``delta`` reached FedAvg's target as fast or faster
(0.32-0.39x of FedAvg's time against 0.35-0.44x for ``mix``, three runs).
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmoe_flwr.config import Section, setting
from fedmoe_flwr.merge.rules import fedasync_delta, fedasync_mix
from fedmoe_flwr.merge.staleness import STALENESS_FUNCTIONS, StalenessFn, make_staleness
from fedmoe_flwr.server.policy import Outcome, Strategy, Update
from fedmoe_flwr.weights import Weights


@dataclass(frozen=True)
class FedAsyncParams(Section):
    """FedAsync's mixing rates and staleness function."""

    alpha: float = setting(0.6, "strategy.fedasync.alpha", "server mixing rate of a stale "
                           "update, scaled by s(tau)", gt=0, le=1)
    fresh_alpha: float = setting(1.0, "strategy.fedasync.fresh-alpha", "mixing rate of a fresh "
                                 "update (tau = 0: nobody else contributed since its base)",
                                 gt=0, le=1)
    stale_rule: str = setting("delta", "strategy.fedasync.stale-rule", "how a stale update "
                              "enters: delta (w <- w + a (w_client - w_base)) or mix "
                              "(w <- (1-a) w + a w_client, the paper)", choices=("mix", "delta"))
    staleness: str = setting("polynomial", "strategy.fedasync.staleness", "s(tau): constant | "
                             "polynomial | hinge | exponential", choices=STALENESS_FUNCTIONS)
    staleness_a: float = setting(0.5, "strategy.fedasync.staleness-a", "polynomial exponent / "
                                 "hinge slope", ge=0, le=100)
    staleness_b: int = setting(4, "strategy.fedasync.staleness-b", "hinge: staleness tolerated "
                               "at full weight", ge=0, le=10**6)
    staleness_decay: float = setting(0.5, "strategy.fedasync.staleness-decay", "exponential: "
                                     "s(tau) = decay ** tau", gt=0, le=1)


class FedAsync(Strategy):
    """FedAsync with a pluggable staleness function ``s(tau)``."""

    name = "fedasync"
    Params = FedAsyncParams

    def __init__(self, params: FedAsyncParams | None = None, *,
                 staleness_fn: StalenessFn | None = None) -> None:
        super().__init__(params)
        p = self.params
        self.staleness_fn = staleness_fn or make_staleness(
            p.staleness, a=p.staleness_a, b=p.staleness_b, decay=p.staleness_decay)

    def on_update(self, update: Update, current: Weights, now: float) -> Outcome:
        """Merge the update: ``fresh_alpha`` at tau 0, else ``alpha * s(tau)`` by the stale rule."""
        p = self.params
        if update.staleness == 0:
            mixing = p.fresh_alpha
        else:
            mixing = p.alpha * self.staleness_fn(update.staleness)
            if p.stale_rule == "delta":
                return Outcome(fedasync_delta(current, update.weights, update.base, mixing),
                               mixing)
        return Outcome(fedasync_mix(current, update.weights, mixing), mixing)
