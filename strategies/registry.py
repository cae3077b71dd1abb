"""Strategies by run-config name (``strategy.name``): adding one is one line here."""

from __future__ import annotations

from typing import Any

from fedmoe_flwr.config import ConfigError

from .base import Strategy
from .fedasync import FedAsync
from .fedavg import FedAvg
from .fedbuff import FedBuff

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (FedAsync, FedBuff, FedAvg)}


def strategy_class(name: str) -> type[Strategy]:
    """Look a strategy up by name; an unknown name lists the valid ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"run config key 'strategy.name' must be one of "
                          f"{sorted(STRATEGIES)}, got {name!r}") from None


def build_strategy(name: str, cfg: Any, **kwargs: Any) -> Strategy:
    """Instantiate a strategy by name with the run's ``strategy.*`` settings."""
    return strategy_class(name)(cfg, **kwargs)
