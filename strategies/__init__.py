"""Aggregation strategies selectable by ``strategy.name`` (see ``registry``)."""

from .base import DueMerge, Member, Outcome, Strategy, Update
from .fedasync import FedAsync
from .fedavg import FedAvg
from .fedbuff import FedBuff
from .registry import STRATEGIES, build_strategy, strategy_class

__all__ = ["STRATEGIES", "DueMerge", "FedAsync", "FedAvg", "FedBuff", "Member", "Outcome",
           "Strategy", "Update", "build_strategy", "strategy_class"]
