"""The strategy interface: a merge policy the server loop calls, nothing more.

The loop (``fedmoe_flwr/server/loop.py``) owns messaging, validation,
checkpoints and evaluation; a strategy only decides

- which idle nodes get a train message now (:meth:`Strategy.select`),
- whether a reply is still wanted, or late (:meth:`Strategy.expects`),
- what a validated update does to its expert (:meth:`Strategy.on_update`),
- which merges are due without a new reply, e.g. a round closing
  (:meth:`Strategy.on_tick`),
- that a node's pending update will not come (:meth:`Strategy.on_missing`).

Staleness unit: expert versions.  A node that trained on version ``v`` of its
expert while the expert moved on to ``V`` sends an update with ``tau = V - v``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from fedmoe_flwr.config import StrategyConfig
from fedmoe_flwr.weights import Weights

EventLog = Callable[..., None]  # run_dir.log_event(event, **fields)


@dataclass(frozen=True)
class Member:
    """A registered node as a strategy sees it."""

    node_id: int
    specialty: str


@dataclass(frozen=True)
class Update:
    """A validated train reply.  ``weights - base`` is the node's delta."""

    node_id: int
    specialty: str
    weights: Weights  # the node's adapter after local training
    base: Weights  # the adapter the node trained from (arrays are never mutated)
    base_version: int
    staleness: int  # tau, in expert versions
    num_examples: int  # examples trained on, capped by what the node registered


@dataclass(frozen=True)
class Outcome:
    """What became of one update.

    ``weights`` are the expert's new weights to publish now (one version), or
    None; ``status`` is ``merged`` or ``buffered`` (kept for a later merge).
    """

    weights: Weights | None
    mixing: float
    status: str = "merged"


@dataclass(frozen=True)
class DueMerge:
    """A merge that became due without a new reply (a round closed, a buffer timed out)."""

    specialty: str
    weights: Weights


def _ignore(event: str, **fields: Any) -> None:
    return None


class Strategy(ABC):
    """Base of every strategy.  Subclasses set ``name`` and implement ``on_update``.

    Parameters
    ----------
    cfg : StrategyConfig
        The run's ``strategy.*`` settings.
    log_event : callable, optional
        Appends an event to ``metrics.jsonl`` (rounds, for example).
    """

    name: ClassVar[str] = "base"

    def __init__(self, cfg: StrategyConfig, *, log_event: EventLog = _ignore) -> None:
        self.cfg = cfg
        self.log_event = log_event

    def select(self, idle: Sequence[Member], members: Sequence[Member],
               now: float) -> list[Member]:
        """Which idle nodes to send their expert's newest weights now (default: all)."""
        return list(idle)

    def expects(self, node_id: int, specialty: str) -> bool:
        """Whether a train reply from this node is still wanted (False: it is late, dropped)."""
        return True

    @abstractmethod
    def on_update(self, update: Update, current: Weights, now: float) -> Outcome:
        """Combine one validated update with the expert's ``current`` weights."""

    def on_tick(self, now: float, versions: Mapping[str, int]) -> list[DueMerge]:
        """Merges due without a new reply; ``versions`` are the experts' current versions."""
        return []

    def on_missing(self, node_id: int) -> None:
        """The node's pending update will not come (error reply, rejected, or node lost)."""
        return None
