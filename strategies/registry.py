"""Strategies by run-config name (``strategy.name``)."""

from __future__ import annotations

from typing import Any

from fedmoe_flwr.config import ConfigError

from .base import AsyncStrategy
from .fedasync import FedAsync
from .fedavg import FedAvg
from .fedbuff import FedBuff

STRATEGIES: dict[str, type[AsyncStrategy]] = {
    FedAsync.name: FedAsync,
    FedBuff.name: FedBuff,
    FedAvg.name: FedAvg,
}


def strategy_class(name: str) -> type[AsyncStrategy]:
    """Look a strategy up by name; an unknown name lists the valid ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"run config key 'strategy.name' must be one of "
                          f"{sorted(STRATEGIES)}, got {name!r}") from None


def build_strategy(name: str, **kwargs: Any) -> AsyncStrategy:
    """Instantiate a strategy by name."""
    return strategy_class(name)(**kwargs)
