"""Which nodes the server knows: registered, refused, or lost and allowed to rejoin."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class NodeInfo:
    """A registered node, from its query reply."""

    node_id: int
    specialty: str
    adapter: str  # what it trains: its specialty's expert, or a shared adapter (peer)
    num_train: int
    num_eval: int
    device: str
    fingerprint: str
    # The node's place among the registered nodes of its specialty (0, 1, ...), set when it
    # registers. Training seeds use it instead of the node id, which Flower draws at random
    # for every run: a lone node then trains on the same batches in every run and under
    # every strategy, so runs and strategies can be compared update for update.
    rank: int = 0


class NodeTable:
    """Registered nodes, refused ones (never asked again) and lost ones (asked after a pause)."""

    def __init__(self, rejoin_backoff: float = 30.0) -> None:
        self.rejoin_backoff = rejoin_backoff  # seconds before a lost node is asked again
        self.registered: dict[int, NodeInfo] = {}
        self.refused: dict[int, str] = {}  # node id -> reason
        self.lost_at: dict[int, float] = {}  # node id -> time of its error reply

    def to_query(self, online: Iterable[int], busy: set[int], now: float) -> list[int]:
        """Online nodes that are neither registered, refused, busy nor in their rejoin pause."""
        return [n for n in online if n not in self.registered and n not in self.refused
                and n not in busy and now - self.lost_at.get(n, -1e18) >= self.rejoin_backoff]

    def add(self, node: NodeInfo) -> None:
        """Register a node (again, after a loss) at the lowest free rank of its specialty."""
        taken = {n.rank for n in self.registered.values()
                 if n.specialty == node.specialty and n.node_id != node.node_id}
        node.rank = min(set(range(len(taken) + 1)) - taken)
        self.registered[node.node_id] = node
        self.lost_at.pop(node.node_id, None)

    def refuse(self, node_id: int, reason: str) -> None:
        """Never ask this node again in this run."""
        self.refused[node_id] = reason

    def quarantine(self, node_id: int, reason: str) -> None:
        """A registered node that keeps lying: dropped and refused for the rest of the run."""
        self.registered.pop(node_id, None)
        self.refuse(node_id, reason)

    def lose(self, node_id: int, now: float) -> None:
        """Drop a node after an error reply; it may rejoin after the backoff."""
        self.registered.pop(node_id, None)
        self.lost_at[node_id] = now

    def specialties(self) -> set[str]:
        """Specialties with at least one registered node."""
        return {n.specialty for n in self.registered.values()}

    def fingerprints(self) -> set[str]:
        """Base-model fingerprints of the registered nodes (they must all agree)."""
        return {n.fingerprint for n in self.registered.values()}
