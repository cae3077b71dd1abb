"""Synchronous FedAvg rounds: the baseline the asynchronous strategies are measured against.

McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from
Decentralized Data", arXiv:1602.05629.  A round sends every idle registered
node of the round's scope its specialty's current adapter and waits for all
of them, or until ``strategy.round-timeout`` (replies after that are dropped
and counted as late).  Then each specialty's expert becomes the average of its
nodes' adapters weighted by the examples each trained on, one version per
round, and the next round starts.

``strategy.sync-scope = "global"`` is one barrier for the whole federation,
which is how a standard Flower ServerApp with ``FedAvg`` runs rounds
(FlowerTune); ``"specialty"`` gives each specialty its own barrier, so a slow
node holds back only its own expert.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fedmoe_flwr.merge.rules import weighted_average
from fedmoe_flwr.weights import Weights

from .base import DueMerge, Member, Outcome, Strategy, Update

log = logging.getLogger("fedmoe.server")


@dataclass
class Round:
    """One open synchronous round of a scope (the federation, or one specialty)."""

    number: int
    scope: str
    started: float
    pending: set[int]  # node ids whose reply the round still waits for
    updates: dict[str, list[tuple[Weights, int]]] = field(default_factory=dict)


class FedAvg(Strategy):
    """Synchronous rounds with an example-weighted average per specialty."""

    name = "fedavg"

    def __init__(self, cfg: Any, **kwargs: Any) -> None:
        super().__init__(cfg, **kwargs)
        self.rounds: dict[str, Round] = {}  # scope -> its open round
        self.round_count = 0

    def _scope(self, specialty: str) -> str:
        return "all" if self.cfg.sync_scope == "global" else specialty

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

    def expects(self, node_id: int, specialty: str) -> bool:
        """Only replies of the open round count; later ones arrived after a timeout."""
        rnd = self.rounds.get(self._scope(specialty))
        return rnd is not None and node_id in rnd.pending

    def on_update(self, update: Update, current: Weights, now: float) -> Outcome:
        """Keep the update for its round's average; nothing changes until the round closes."""
        rnd = self.rounds[self._scope(update.specialty)]
        rnd.pending.discard(update.node_id)
        rnd.updates.setdefault(update.specialty, []).append((update.weights,
                                                             update.num_examples))
        return Outcome(None, 0.0, "buffered")

    def on_missing(self, node_id: int) -> None:
        """A failed or rejected node no longer holds its round back."""
        for rnd in self.rounds.values():
            rnd.pending.discard(node_id)

    def on_tick(self, now: float, versions: Mapping[str, int]) -> list[DueMerge]:
        """Close rounds that every node answered or that timed out: one average each."""
        timeout = self.cfg.round_timeout
        closed = [rnd for rnd in self.rounds.values()
                  if not rnd.pending or (timeout and now - rnd.started >= timeout)]
        merges: list[DueMerge] = []
        for rnd in closed:
            del self.rounds[rnd.scope]
            merges += self._close(rnd, now, versions)
        return merges

    def _close(self, rnd: Round, now: float, versions: Mapping[str, int]) -> list[DueMerge]:
        merges = [DueMerge(s, weighted_average([w for w, _ in ups], [n for _, n in ups]))
                  for s, ups in sorted(rnd.updates.items())]
        new_versions = {m.specialty: versions[m.specialty] + 1 for m in merges}
        late = sorted(rnd.pending)
        log.info("round %d (%s) closed after %.1fs: %s%s", rnd.number, rnd.scope,
                 now - rnd.started, ", ".join(f"{s} -> v{v} ({len(rnd.updates[s])} update(s))"
                                              for s, v in new_versions.items()) or "no updates",
                 f"; timed out waiting for node(s) {late}" if late else "")
        self.log_event("round", number=rnd.number, scope=rnd.scope,
                       seconds=round(now - rnd.started, 3), versions=new_versions,
                       updates={s: len(u) for s, u in rnd.updates.items()},
                       timed_out=[str(n) for n in late])
        return merges
