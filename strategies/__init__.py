"""Aggregation strategies selectable by ``strategy.name``: one file each, one line below.

Each module declares a :class:`fedmoe_flwr.server.policy.Strategy` with its own
``Params`` (run-config keys ``strategy.<name>.*``); :func:`register` makes it
selectable.  Adding a strategy is a new file here and one ``register`` line.
"""

from fedmoe_flwr.server.policy import register

from .fedasync import FedAsync
from .fedavg import FedAvg
from .fedbuff import FedBuff
from .flower_fedavg import FlowerFedAvg

register(FedAsync)
register(FedBuff)
register(FedAvg)
register(FlowerFedAvg)

__all__ = ["FedAsync", "FedAvg", "FedBuff", "FlowerFedAvg"]
