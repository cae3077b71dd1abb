"""Held-out evaluation: every adapter scored on every domain by one node of that domain."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from flwr.app import ConfigRecord, RecordDict
from flwr.serverapp import Grid

from fedmoe_flwr import contract as C
from fedmoe_flwr.server.federation import Federation
from fedmoe_flwr.server.intake import parse_eval_reply
from fedmoe_flwr.server.messenger import Flight, Messenger
from fedmoe_flwr.server.nodes import NodeInfo
from fedmoe_flwr.weights import to_array_record

log = logging.getLogger("fedmoe.server")


class Evaluator:
    """Pushes evaluation messages and keeps the domain x adapter loss matrix."""

    def __init__(self, federation: Federation, messenger: Messenger,
                 clock: Callable[[], float]) -> None:
        self.federation = federation
        self.messenger = messenger
        self.clock = clock
        self.matrix: dict[str, dict[str, float]] = {}  # domain -> adapter -> loss
        self.initial: dict[str, dict[str, float]] = {}

    def push(self, grid: Grid, nodes: Iterable[NodeInfo], tag: str) -> set[str]:
        """Ask one node per domain for the held-out loss of every adapter."""
        fed = self.federation
        # experts' records are the ones their train messages use (encoded once per version)
        records: dict[str, Any] = {
            f"{C.EVAL_PREFIX}{name}": (fed.experts[name].record()[0] if name in fed.experts
                                       else to_array_record(w))
            for name, w in fed.adapters().items()}
        shapes: dict[str, Any] = {}
        if fed.gateway is not None:
            shapes = {C.EVAL_RANK_PREFIX + C.GATEWAY: fed.gateway.rank,
                      C.EVAL_ALPHA_PREFIX + C.GATEWAY: fed.gateway.alpha}
        evaluators: dict[str, NodeInfo] = {}
        for node in nodes:
            evaluators.setdefault(node.specialty, node)
        messages = []
        for domain, node in sorted(evaluators.items()):
            content = RecordDict({**records,
                                  C.CONFIG: ConfigRecord({C.SPECIALTY: domain, **shapes})})
            messages.append((self.messenger.message(content, node.node_id, "evaluate"),
                             Flight(node.node_id, "evaluate", self.clock(), domain, tag=tag)))
        return self.messenger.push(grid, messages)

    def receive(self, content: RecordDict, flight: Flight) -> None:
        """Record one domain's losses (a malformed reply raises ``UpdateRejected``)."""
        row = parse_eval_reply(content)
        fed = self.federation
        self.matrix[flight.specialty] = row
        if flight.tag == "initial":
            self.initial[flight.specialty] = row
        for name, loss in row.items():
            target = fed.gateway if name == C.GATEWAY else fed.experts.get(name)
            if target is not None:
                target.eval_losses[flight.specialty] = loss
        elapsed = 0.0 if flight.tag == "initial" else self.clock() - fed.start
        fed.run_dir.log_event("eval", tag=flight.tag, domain=flight.specialty,
                              elapsed=round(elapsed, 3), losses=row)
