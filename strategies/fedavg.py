"""Synchronous FedAvg rounds: the baseline the asynchronous strategies are measured against.

McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from
Decentralized Data", arXiv:1602.05629.  A round sends every idle registered
node of the round's scope its adapter's current weights and waits for all of
them, or until ``strategy.fedavg.round-timeout`` (replies after that are
dropped and counted as late).  Then each adapter becomes the average of its
nodes' weights weighted by the examples each trained on, one version per
round, and the next round starts.

``strategy.fedavg.sync-scope = "global"`` is one barrier for the whole
federation, which is how a standard Flower ServerApp with ``FedAvg`` runs
rounds (FlowerTune); ``"specialty"`` gives each specialty its own barrier, so
a slow node holds back only its own expert.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedmoe_flwr.config import DAY, Section, setting
from fedmoe_flwr.events import Round as RoundEvent
from fedmoe_flwr.merge.robust import AGGREGATES, robust_average
from fedmoe_flwr.merge.rules import weighted_average
from fedmoe_flwr.privacy import noisy_sum
from fedmoe_flwr.server.policy import DueMerge, Member, Outcome, Strategy, Update
from fedmoe_flwr.weights import Weights

log = logging.getLogger("fedmoe.server")


@dataclass(frozen=True)
class FedAvgParams(Section):
    """FedAvg's round timeout and barrier scope."""

    round_timeout: float = setting(0.0, "strategy.fedavg.round-timeout", "seconds a round "
                                   "waits; later replies are dropped (0 = wait for all)",
                                   ge=0, le=DAY)
    sync_scope: str = setting("global", "strategy.fedavg.sync-scope", "one barrier for all "
                              "nodes (global) or one per specialty",
                              choices=("global", "specialty"))
    aggregate: str = setting("mean", "strategy.fedavg.aggregate", "how a round's updates "
                             "combine: mean (weighted by examples), or per coordinate "
                             "trimmed-mean or median (robust to a lying node; 3 or more)",
                             choices=AGGREGATES)
    trim: float = setting(0.2, "strategy.fedavg.trim", "trimmed-mean: share of the largest and "
                          "of the smallest values dropped per coordinate", ge=0, lt=0.5)


@dataclass
class Round:
    """One open synchronous round of a scope (the federation, or one specialty)."""

    number: int
    scope: str
    started: float
    pending: set[int]  # node ids whose reply the round still waits for
    updates: dict[str, list[tuple[Weights, int]]] = field(default_factory=dict)
    bases: dict[str, Weights] = field(default_factory=dict)  # what the round's nodes got


class FedAvg(Strategy):
    """Synchronous rounds with an example-weighted average per adapter."""

    name = "fedavg"
    Params = FedAvgParams
    central_dp = True

    def __init__(self, params: FedAvgParams | None = None) -> None:
        super().__init__(params)
        self.rounds: dict[str, Round] = {}  # scope -> its open round
        self.round_count = 0

    def _scope(self, specialty: str) -> str:
        return "all" if self.params.sync_scope == "global" else specialty

    def select(self, idle: Sequence[Member], members: Sequence[Member],
               now: float) -> list[Member]:
        """Open a round for each scope that has none and has idle nodes; send them.

        Nodes that become free while their scope's round is open wait for the
        next one; that waiting is exactly the cost of synchrony.
        """
        chosen: list[Member] = []
        for scope in sorted({self._scope(m.specialty) for m in idle} - set(self.rounds)):
            joining = [m for m in idle if self._scope(m.specialty) == scope]
            self.round_count += 1
            self.rounds[scope] = Round(self.round_count, scope, now,
                                       {m.node_id for m in joining})
            log.info("round %d (%s): %d node(s)", self.round_count, scope, len(joining))
            chosen += joining
        return chosen

    def _round_of(self, node_id: int) -> Round | None:
        return next((r for r in self.rounds.values() if node_id in r.pending), None)

    def expects(self, node_id: int, adapter: str) -> bool:
        """Only replies of an open round count; later ones arrived after a timeout."""
        return self._round_of(node_id) is not None

    def on_update(self, update: Update, current: Weights, now: float) -> Outcome:
        """Keep the update for its round's average; nothing changes until the round closes."""
        rnd = self._round_of(update.node_id)
        if rnd is None:  # the loop asks expects() first; a late reply never gets here
            raise RuntimeError(f"node {update.node_id} has no open round")
        rnd.pending.discard(update.node_id)
        rnd.updates.setdefault(update.adapter, []).append((update.weights,
                                                           update.num_examples))
        rnd.bases.setdefault(update.adapter, update.base)
        return Outcome(None, 0.0, "buffered")

    def on_missing(self, node_id: int) -> None:
        """A failed or rejected node no longer holds its round back."""
        for rnd in self.rounds.values():
            rnd.pending.discard(node_id)

    def on_tick(self, now: float, versions: Mapping[str, int]) -> list[DueMerge]:
        """Close rounds that every node answered or that timed out: one average each."""
        timeout = self.params.round_timeout
        closed = [rnd for rnd in self.rounds.values()
                  if not rnd.pending or (timeout and now - rnd.started >= timeout)]
        merges: list[DueMerge] = []
        for rnd in closed:
            del self.rounds[rnd.scope]
            merges += self._close(rnd, now, versions)
        return merges

    def average(self, updates: list[tuple[Weights, int]]) -> Weights:
        """One adapter's round average (weighted by examples, or robust per coordinate)."""
        if self.params.aggregate == "mean":
            return weighted_average([w for w, _ in updates], [n for _, n in updates])
        return robust_average([w for w, _ in updates], [n for _, n in updates],
                              self.params.aggregate, self.params.trim)

    def _private(self, updates: list[tuple[Weights, int]], base: Weights) -> Weights:
        """Central DP: ``base + (sum of clipped deltas + N(0, (z C)^2)) / n``, unweighted.

        Example counts cannot weigh a private round: a node's weight would raise
        its contribution above the one clip the noise is calibrated to.
        """
        deltas = [{k: w[k] - base[k] for k in base} for w, _ in updates]
        total = noisy_sum(deltas, self.dp.std, self.dp.rng)
        n = np.float32(len(deltas))
        return {k: base[k] + total[k] / n for k in base}

    def _close(self, rnd: Round, now: float, versions: Mapping[str, int]) -> list[DueMerge]:
        merges = [DueMerge(a, self._private(ups, rnd.bases[a]) if self.dp is not None
                           else self.average(ups)) for a, ups in sorted(rnd.updates.items())]
        new_versions = {m.adapter: versions[m.adapter] + 1 for m in merges}
        late = sorted(rnd.pending)
        log.info("round %d (%s) closed after %.1fs: %s%s", rnd.number, rnd.scope,
                 now - rnd.started, ", ".join(f"{s} -> v{v} ({len(rnd.updates[s])} update(s))"
                                              for s, v in new_versions.items()) or "no updates",
                 f"; timed out waiting for node(s) {late}" if late else "")
        self.emit(RoundEvent(number=rnd.number, scope=rnd.scope,
                             seconds=round(now - rnd.started, 3), versions=new_versions,
                             updates={s: len(u) for s, u in rnd.updates.items()},
                             timed_out=[str(n) for n in late]))
        return merges
