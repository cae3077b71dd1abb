"""Aggregation strategies selectable by ``strategy.name`` (see ``registry``)."""

from .base import AsyncStrategy, MergeResult
from .fedasync import FedAsync
from .fedavg import FedAvg
from .fedbuff import FedBuff
from .registry import STRATEGIES, build_strategy, strategy_class

__all__ = ["STRATEGIES", "AsyncStrategy", "FedAsync", "FedAvg", "FedBuff", "MergeResult",
           "build_strategy", "strategy_class"]
