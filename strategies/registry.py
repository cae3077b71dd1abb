"""Strategies by run-config name (``strategy.name``): adding one is one line here."""

from __future__ import annotations

from typing import Any

from fedmoe_flwr.config import ConfigError

from .base import Strategy
from .fedasync import FedAsync
from .fedavg import FedAvg
from .fedbuff import FedBuff

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (FedAsync, FedBuff, FedAvg)}
# Not a merge policy of ours but a whole loop: Flower's own FedAvg training one global
# adapter (fedmoe_flwr/server/peer.py), the baseline the experts are measured against.
PEER_BASELINES = ("flower-fedavg",)


def check_strategy_name(name: str) -> str:
    """``name`` if it is a strategy or a peer baseline; else an error listing both."""
    if name in STRATEGIES or name in PEER_BASELINES:
        return name
    raise ConfigError(f"run config key 'strategy.name' must be one of "
                      f"{sorted(STRATEGIES) + list(PEER_BASELINES)}, got {name!r}")


def strategy_class(name: str) -> type[Strategy]:
    """Look a strategy up by name; an unknown name lists the valid ones."""
    check_strategy_name(name)
    if name not in STRATEGIES:
        raise ConfigError(f"strategy {name!r} is a peer baseline with a loop of its own, not a "
                          f"merge policy")
    return STRATEGIES[name]


def build_strategy(name: str, cfg: Any, **kwargs: Any) -> Strategy:
    """Instantiate a strategy by name with the run's ``strategy.*`` settings."""
    return strategy_class(name)(cfg, **kwargs)
