"""The policy port: what the server loop asks a merge strategy, and the registry of strategies.

The loop (:mod:`fedmoe_flwr.server.loop`) owns messaging, validation,
checkpoints and evaluation; a strategy only decides

- which adapter a node of a specialty trains (:meth:`Strategy.adapter_for`: its
  specialty's expert, or one shared adapter for a baseline that has no experts),
- which idle nodes get a train message now (:meth:`Strategy.select`),
- whether a reply is still wanted, or late (:meth:`Strategy.expects`),
- what a validated update does to its adapter (:meth:`Strategy.on_update`),
- which merges are due without a new reply, e.g. a round closing
  (:meth:`Strategy.on_tick`),
- that a node's pending update will not come (:meth:`Strategy.on_missing`).

The port lives here, beside the loop that calls it; the policies in
``strategies/`` import it and never the reverse.  Each policy declares its own
parameters as a :class:`~fedmoe_flwr.config.Section` (run-config keys
``strategy.<name>.<key>``), parsed by the same machinery as every other key, so
adding a strategy with parameters is one file plus one :func:`register` line.

Staleness unit: adapter versions.  A node that trained on version ``v`` of its
adapter while the adapter moved on to ``V`` sends an update with ``tau = V - v``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fedmoe_flwr.config import AppConfig, ConfigError, Section, StrategyConfig, parse_section
from fedmoe_flwr.events import Event
from fedmoe_flwr.weights import Weights

Emit = Callable[[Event], None]  # EventLog.write: appends one event to metrics.jsonl


@dataclass(frozen=True)
class Member:
    """A registered node as a strategy sees it: its domain and the adapter it trains."""

    node_id: int
    specialty: str
    adapter: str


@dataclass(frozen=True)
class Update:
    """A validated train reply.  ``weights - base`` is the node's delta."""

    node_id: int
    specialty: str  # the node's domain
    adapter: str  # what it trained (its specialty's expert, or a shared adapter)
    weights: Weights  # the node's adapter after local training
    base: Weights  # the adapter the node trained from (arrays are never mutated)
    base_version: int
    staleness: int  # tau, in adapter versions
    num_examples: int  # examples trained on, capped by what the node registered


@dataclass(frozen=True)
class Outcome:
    """What became of one update.

    ``weights`` are the adapter's new weights to publish now (one version), or
    None; ``status`` is ``merged`` or ``buffered`` (kept for a later merge).
    """

    weights: Weights | None
    mixing: float
    status: str = "merged"


@dataclass(frozen=True)
class DueMerge:
    """A merge that became due without a new reply (a round closed, a buffer timed out)."""

    adapter: str
    weights: Weights


@dataclass
class CentralNoise:
    """Central DP: the clip every delta was cut to, the noise multiplier, OS-entropy noise.

    A strategy that merges buffered steps adds ``N(0, (z C)^2)`` once to the
    sum of each step's clipped deltas before dividing (DP-FedAvg, McMahan et
    al. 2018; FedBuff with DP, Nguyen et al. 2022).
    """

    clip: float
    noise_multiplier: float
    rng: np.random.Generator = field(default_factory=np.random.default_rng)

    @property
    def std(self) -> float:
        """Standard deviation of the noise added to one sum."""
        return self.noise_multiplier * self.clip


@dataclass(frozen=True)
class NoParams(Section):
    """The parameters of a strategy that has none."""


def _ignore(event: Event) -> None:
    return None


class Strategy(ABC):
    """Base of every strategy.  Subclasses set ``name`` (and ``Params``), implement ``on_update``.

    Parameters
    ----------
    params : Section
        The strategy's own ``strategy.<name>.*`` settings (an instance of ``Params``).

    The loop sets ``emit`` (append an event to ``metrics.jsonl``: rounds, for
    example) when it takes the strategy on; until then events go nowhere.
    """

    name: ClassVar[str] = "base"
    Params: ClassVar[type[Section]] = NoParams
    builds_gateway: ClassVar[bool] = True  # False: one shared adapter, nothing to merge
    central_dp: ClassVar[bool] = False  # True: noises each merged sum (privacy.mode central)

    def __init__(self, params: Any = None) -> None:
        self.params = params if params is not None else self.Params()
        self.emit: Emit = _ignore
        self.dp: CentralNoise | None = None  # set by the loop under central DP

    @classmethod
    def check_run(cls, cfg: AppConfig) -> None:
        """Refuse run settings this strategy cannot honour (a ConfigError), before any write."""
        if cfg.privacy.enabled and cfg.privacy.mode == "central" and not cls.central_dp:
            able = [n for n, c in _REGISTRY.items() if c.central_dp]
            raise ConfigError(f"privacy.mode = 'central' adds noise to the sum of a buffered "
                              f"step, and strategy {cls.name!r} merges single updates; use "
                              f"one of {able}, or privacy.mode = 'local'")

    def adapter_for(self, specialty: str) -> str:
        """The adapter a node of ``specialty`` trains: by default its specialty's expert."""
        return specialty

    def select(self, idle: Sequence[Member], members: Sequence[Member],
               now: float) -> list[Member]:
        """Which idle nodes to send their adapter's newest weights now (default: all)."""
        return list(idle)

    def expects(self, node_id: int, adapter: str) -> bool:
        """Whether a train reply from this node is still wanted (False: it is late, dropped)."""
        return True

    @abstractmethod
    def on_update(self, update: Update, current: Weights, now: float) -> Outcome:
        """Combine one validated update with the adapter's ``current`` weights."""

    def on_tick(self, now: float, versions: Mapping[str, int]) -> list[DueMerge]:
        """Merges due without a new reply; ``versions`` are the adapters' current versions."""
        return []

    def on_missing(self, node_id: int) -> None:
        """The node's pending update will not come (error reply, rejected, or node lost)."""
        return None


_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Make a strategy selectable by ``strategy.name`` (usable as a class decorator)."""
    if not cls.name or cls.name == Strategy.name:
        raise ValueError(f"{cls.__name__} must set a strategy name")
    for f in _param_keys(cls):
        if not f.startswith(f"strategy.{cls.name}."):
            raise ValueError(f"{cls.__name__}.Params key {f!r} must start with "
                             f"'strategy.{cls.name}.'")
    _REGISTRY[cls.name] = cls
    return cls


def strategy_names() -> list[str]:
    """The registered strategy names (``strategies/`` registers the built-in ones)."""
    return sorted(_REGISTRY)


def registered() -> dict[str, type[Strategy]]:
    """Name -> strategy class (for the configuration reference and its parity test)."""
    return dict(sorted(_REGISTRY.items()))


def strategy_class(name: str) -> type[Strategy]:
    """Look a strategy up by name; an unknown name lists the valid ones."""
    if name not in _REGISTRY:
        raise ConfigError(f"run config key 'strategy.name' must be one of {strategy_names()}, "
                          f"got {name!r}")
    return _REGISTRY[name]


def _param_keys(cls: type[Strategy]) -> set[str]:
    from dataclasses import fields

    return {f.metadata["key"] for f in fields(cls.Params) if "key" in f.metadata}


def _check_params(raw: Mapping[str, Any]) -> None:
    """Every ``strategy.<name>.<key>`` names a registered strategy and one of its keys."""
    for key in sorted(raw):
        owner = next((c for n, c in _REGISTRY.items() if key.startswith(f"strategy.{n}.")), None)
        if owner is None:
            raise ConfigError(f"run config key {key!r} names no registered strategy; "
                              f"strategies: {strategy_names()}")
        if key not in _param_keys(owner):
            raise ConfigError(f"unknown run config key {key!r}; strategy {owner.name!r} takes "
                              f"{sorted(_param_keys(owner)) or 'no parameters'}")
    for cls in _REGISTRY.values():  # values of every strategy's keys are checked, not just one's
        parse_section(cls.Params, raw)


def build_strategy(cfg: AppConfig) -> Strategy:
    """The strategy ``strategy.name`` names, with its parameters; refuses bad settings.

    Runs before the run directory is made, so a bad name, key or value, or a
    setting the strategy cannot honour, stops the run with nothing written.
    """
    scfg: StrategyConfig = cfg.strategy
    cls = strategy_class(scfg.name)
    _check_params(scfg.params)
    cls.check_run(cfg)
    return cls(parse_section(cls.Params, scfg.params))
