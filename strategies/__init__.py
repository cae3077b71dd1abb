"""Aggregation strategies selectable by ``strategy.name`` (see ``registry``)."""

from .base import DueMerge, Member, Outcome, Strategy, Update
from .fedasync import FedAsync
from .fedavg import FedAvg
from .fedbuff import FedBuff
from .registry import (
    PEER_BASELINES,
    STRATEGIES,
    build_strategy,
    check_strategy_name,
    strategy_class,
)

__all__ = ["PEER_BASELINES", "STRATEGIES", "DueMerge", "FedAsync", "FedAvg", "FedBuff", "Member",
           "Outcome", "Strategy", "Update", "build_strategy", "check_strategy_name",
           "strategy_class"]
