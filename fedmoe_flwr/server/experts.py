"""Server-side adapter state: weights, version and counters per expert, and the gateway.

An :class:`ExpertState` changes only through :class:`~fedmoe_flwr.server.federation.Federation`
(``publish`` moves weights, version and the counters of the updates merged into
them together, so a refused merge changes nothing).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fedmoe_flwr.weights import Weights


@dataclass(frozen=True)
class Contribution:
    """What one accepted update adds to its expert's counters once it is merged."""

    node_id: int
    examples: int
    staleness: int
    train_loss: float


@dataclass
class ExpertState:
    """One adapter on the server (a specialty's expert, or the peer's global adapter).

    ``version`` counts merged updates and is the unit of staleness: a node
    that trained on version 3 while the expert moved to 5 sends an update
    with ``tau = 2``.
    """

    specialty: str
    weights: Weights
    version: int = 0
    updates: int = 0
    examples_seen: int = 0
    nodes: set[int] = field(default_factory=set)
    last_train_loss: float | None = None
    eval_losses: dict[str, float] = field(default_factory=dict)  # domain -> held-out loss
    staleness: Counter = field(default_factory=Counter)  # tau -> merged updates with it

    def absorb(self, weights: Weights, merged: Iterable[Contribution]) -> None:
        """New weights, one version up, with the counters of the updates they hold."""
        self.weights = weights
        self.version += 1
        self.updates += 1
        for c in merged:
            self.examples_seen += c.examples
            self.nodes.add(c.node_id)
            self.last_train_loss = c.train_loss
            self.staleness[c.staleness] += 1

    def meta(self) -> dict[str, Any]:
        """The ``meta.json`` of the expert's adapter directory."""
        return {
            "specialty": self.specialty,
            "version": self.version,
            "updates": self.updates,
            "examples_seen": self.examples_seen,
            "nodes": sorted(str(n) for n in self.nodes),
            "last_train_loss": self.last_train_loss,
            "eval_losses": self.eval_losses,
            "staleness_histogram": {str(t): n for t, n in sorted(self.staleness.items())},
        }


@dataclass
class GatewayState:
    """The gateway adapter and how it was built."""

    weights: Weights
    method: str
    version: int = 0
    coefficients: dict[str, float] = field(default_factory=dict)
    expert_versions: dict[str, int] = field(default_factory=dict)
    eval_losses: dict[str, float] = field(default_factory=dict)
    rank: int = 0  # LoRA rank of the merged adapter (cat: experts x expert rank)
    alpha: int = 0

    def meta(self) -> dict[str, Any]:
        """The ``meta.json`` of the gateway's adapter directory."""
        return {
            "method": self.method,
            "version": self.version,
            "lora_r": self.rank,
            "lora_alpha": self.alpha,
            "coefficients": self.coefficients,
            "expert_versions": self.expert_versions,
            "eval_losses": self.eval_losses,
        }
