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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import Message
from flwr.serverapp import Grid

from fedmoe_flwr.aggregation import Weights, weighted_average
from fedmoe_flwr.experts import ExpertState

from .base import AsyncStrategy, Flight, MergeResult, NodeInfo

log = logging.getLogger("fedmoe.server")


@dataclass
class Round:
    """One open synchronous round of a scope (the federation, or one specialty)."""

    number: int
    scope: str
    started: float
    pending: set[int]  # node ids whose reply the round still waits for
    updates: dict[str, list[tuple[Weights, int]]] = field(default_factory=dict)


class FedAvg(AsyncStrategy):
    """Synchronous rounds with an example-weighted average per specialty."""

    name = "fedavg"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rounds: dict[str, Round] = {}  # scope -> its open round
        self.round_count = 0
        self._round: Round | None = None  # the round of the reply being merged

    def _scope(self, specialty: str) -> str:
        return "all" if self.cfg.strategy.sync_scope == "global" else specialty

    def dispatch(self, grid: Grid, nodes: Iterable[NodeInfo]) -> None:
        """Start a round for each scope of ``nodes`` that has none open.

        Nodes that become free while their scope's round is open wait for the
        next one; that waiting is exactly the cost of synchrony.
        """
        if self.stopping or self._cap_reached():
            return
        busy = {f.node_id for f in self.flights.values() if f.kind == "train"}
        for scope in sorted({self._scope(n.specialty) for n in nodes}):
            if scope in self.rounds:
                continue
            members = [n for n in self.nodes.values()
                       if self._scope(n.specialty) == scope and n.node_id not in busy]
            if not members:
                continue
            self.round_count += 1
            self.rounds[scope] = Round(self.round_count, scope, self.clock(),
                                       {n.node_id for n in members})
            log.info("round %d (%s): %d node(s)", self.round_count, scope, len(members))
            self._push(grid, [self._train_message(n) for n in members])

    def _handle_train(self, grid: Grid, reply: Message, flight: Flight) -> None:
        rnd = self.rounds.get(self._scope(flight.specialty))
        if rnd is None or flight.node_id not in rnd.pending:
            self.stats.late += 1
            log.warning("late reply from node %s (%s) dropped: its round closed at the "
                        "timeout", flight.node_id, flight.specialty)
            self.run_dir.log_event("late", node=str(flight.node_id), specialty=flight.specialty,
                                   elapsed=round(self.clock() - self.start, 3))
            node = self.nodes.get(flight.node_id)
            if node is not None:
                self.dispatch(grid, [node])
            return
        self._round = rnd
        try:
            super()._handle_train(grid, reply, flight)
        finally:
            self._round = None
            rnd.pending.discard(flight.node_id)

    def _handle_error(self, reply: Message, flight: Flight) -> None:
        super()._handle_error(reply, flight)
        for rnd in self.rounds.values():  # a failed node no longer holds its round back
            rnd.pending.discard(flight.node_id)

    def merge(self, expert: ExpertState, update: Weights, base: Weights, staleness: int,
              num_examples: int) -> MergeResult:
        """Keep the update for the round's average; nothing changes until the round closes."""
        assert self._round is not None, "merge outside a round"
        self._round.updates.setdefault(expert.specialty, []).append((update, num_examples))
        return MergeResult(None, 0.0)

    def on_tick(self, grid: Grid) -> None:
        """Close rounds that every node answered or that timed out; start the next ones."""
        timeout = self.cfg.strategy.round_timeout
        now = self.clock()
        closed = [rnd for rnd in self.rounds.values()
                  if not rnd.pending or (timeout and now - rnd.started >= timeout)]
        for rnd in closed:
            del self.rounds[rnd.scope]
            self._close(rnd)
        if closed:
            self.dispatch(grid, list(self.nodes.values()))

    def _close(self, rnd: Round) -> None:
        """Average each specialty's updates into its expert (one version per round)."""
        versions = {}
        for specialty, updates in sorted(rnd.updates.items()):
            expert = self.experts[specialty]
            self._apply(expert, weighted_average([w for w, _ in updates],
                                                 [n for _, n in updates]))
            versions[specialty] = expert.version
        seconds = self.clock() - rnd.started
        late = sorted(rnd.pending)
        log.info("round %d (%s) closed after %.1fs: %s%s", rnd.number, rnd.scope, seconds,
                 ", ".join(f"{s} -> v{v} ({len(rnd.updates[s])} update(s))"
                           for s, v in versions.items()) or "no updates",
                 f"; timed out waiting for node(s) {late}" if late else "")
        self.run_dir.log_event("round", number=rnd.number, scope=rnd.scope,
                               seconds=round(seconds, 3), versions=versions,
                               updates={s: len(u) for s, u in rnd.updates.items()},
                               timed_out=[str(n) for n in late],
                               elapsed=round(self.clock() - self.start, 3))
