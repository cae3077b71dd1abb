"""Server-side expert state: weights, version and counters per specialty."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fedmoe_flwr.codec import decode, encode
from fedmoe_flwr.weights import Weights


@dataclass
class ExpertState:
    """One specialty's adapter on the server.

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
    _wire: dict[str, tuple[int, int, Any, Weights]] = field(default_factory=dict, repr=False,
                                                            compare=False)

    def record(self, compression: str = "none") -> tuple[Any, Weights]:
        """The weights as a message's ArrayRecord, and the weights a node decodes from it.

        Encoded once per version and compression: every node of a specialty that
        is sent the same version gets the same record, so the weights are packed
        once and Flower hashes its arrays once.  With compression the server
        sends float16, and a node's delta is relative to exactly what it got.
        """
        wire = "none" if compression == "none" else "fp16"
        cached = self._wire.get(wire)
        if cached is None or cached[:2] != (self.version, id(self.weights)):
            record = encode(self.weights, wire)
            sent = self.weights if wire == "none" else decode(record)
            cached = self._wire[wire] = (self.version, id(self.weights), record, sent)
        return cached[2], cached[3]

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
