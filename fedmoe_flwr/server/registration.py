"""Asking online nodes who they are: the query messages of registration and rejoining."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flwr.app import ConfigRecord, RecordDict
from flwr.serverapp import Grid

from fedmoe_flwr.server.messenger import Flight, Messenger
from fedmoe_flwr.server.nodes import NodeTable

log = logging.getLogger("fedmoe.server")

NODE_RECHECK_S = 5.0  # how often grid.get_node_ids() is re-read for joiners


class Registrar:
    """Queries nodes that are online but neither registered, refused nor resting."""

    def __init__(self, nodes: NodeTable, messenger: Messenger,
                 clock: Callable[[], float]) -> None:
        self.nodes = nodes
        self.messenger = messenger
        self.clock = clock
        self.last_check = -1e18

    def query(self, grid: Grid) -> None:
        """Send a query to every node that should register (again)."""
        now = self.last_check = self.clock()
        todo = self.nodes.to_query(grid.get_node_ids(), self.messenger.busy(), now)
        m = self.messenger
        m.push(grid, [(m.message(RecordDict({"config": ConfigRecord({})}), n, "query"),
                       Flight(n, "query", now)) for n in todo])

    def due(self) -> bool:
        """Whether the node list should be read again (joiners, rejoiners)."""
        return self.clock() - self.last_check >= NODE_RECHECK_S

    def register(self, grid: Grid, poll: Callable[[Grid], int], specialties: set[str],
                 timeout: float) -> None:
        """Query and poll until every specialty has a node, or ``timeout`` seconds passed.

        No node at all is an error; missing specialties are a warning (their
        nodes may join later).
        """
        t0 = self.clock()
        while self.clock() - t0 < timeout:
            if self.due() or not self.messenger.flights:
                self.query(grid)
            poll(grid)
            if self.nodes.specialties() >= specialties:
                break
        if not self.nodes.registered:
            raise RuntimeError(f"no node registered within {timeout:.0f}s "
                               f"(run.register-timeout); refused: "
                               f"{self.nodes.refused or 'none'}")
        missing = sorted(specialties - self.nodes.specialties())
        if missing:
            log.warning("no node for %s yet; training the others and waiting for them", missing)
