"""Held-out evaluation: every adapter scored on every domain by one node of that domain."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from flwr.app import RecordDict
from flwr.serverapp import Grid

from fedmoe_flwr.contract import GATEWAY, EvalInstruction, EvalReply
from fedmoe_flwr.events import Eval, EventLog
from fedmoe_flwr.server.federation import Federation
from fedmoe_flwr.server.intake import guarded
from fedmoe_flwr.server.messenger import Flight, Messenger
from fedmoe_flwr.server.nodes import NodeInfo

log = logging.getLogger("fedmoe.server")


class Evaluator:
    """Pushes evaluation messages and keeps the domain x adapter loss matrix."""

    def __init__(self, federation: Federation, messenger: Messenger, events: EventLog,
                 clock: Callable[[], float]) -> None:
        self.federation = federation
        self.messenger = messenger
        self.events = events
        self.clock = clock
        self.matrix: dict[str, dict[str, float]] = {}  # domain -> adapter -> loss
        self.initial: dict[str, dict[str, float]] = {}

    def push(self, grid: Grid, nodes: Iterable[NodeInfo], tag: str) -> set[str]:
        """Ask one node per domain for the held-out loss of every adapter."""
        fed, m = self.federation, self.messenger
        records = {}
        for name, expert in fed.experts.items():  # the records train messages use
            records[name] = m.weights_record(name, expert.version, expert.weights)[0]
        shapes: dict[str, tuple[int, int]] = {}
        if fed.gateway is not None:
            gw = fed.gateway
            records[GATEWAY] = m.weights_record(GATEWAY, gw.version, gw.weights)[0]
            shapes = {GATEWAY: (gw.rank, gw.alpha)}
        evaluators: dict[str, NodeInfo] = {}
        for node in nodes:
            evaluators.setdefault(node.specialty, node)
        messages = [(m.message(EvalInstruction(domain, shapes).to_content(records),
                               node.node_id, "evaluate"),
                     Flight(node.node_id, "evaluate", self.clock(), domain, tag=tag))
                    for domain, node in sorted(evaluators.items())]
        return m.push(grid, messages)

    def receive(self, content: RecordDict, flight: Flight) -> None:
        """Record one domain's losses (a malformed reply raises ``UpdateRejected``)."""
        row = guarded(EvalReply.from_content, content).losses
        self.matrix[flight.adapter] = row
        if flight.tag == "initial":
            self.initial[flight.adapter] = row
        self.federation.record_eval(flight.adapter, row)
        elapsed = 0.0 if flight.tag == "initial" else self.clock() - self.federation.start
        self.events.write(Eval(tag=flight.tag, domain=flight.adapter, elapsed=round(elapsed, 3),
                               losses=row))
