"""The peer baseline: Flower's own FedAvg training one global adapter on every node.

What FlowerTune LLM and most federated LLM fine-tuning recipes do: every node
trains the same LoRA adapter on its own data, and each round the server
averages the replies weighted by ``num-examples`` with Flower's own
aggregation (:func:`flwr.serverapp.strategy.strategy_utils.aggregate_arrayrecords`,
the function ``flwr.serverapp.strategy.FedAvg.aggregate_train`` calls).  It runs
in the same loop as every strategy, so its replies pass the same intake and
checks, and it is checkpointed (``experts/global/``), evaluated and summarised
like an expert: the async-vs-sync benchmark shows, measured, what one expert
per specialty buys over one adapter for everything.

Rounds are global barriers (FedAvg with ``fraction_train = 1``).  Privacy is
refused: the baseline is Flower's FedAvg as it ships, and a private peer would
be a different baseline (compare private experts with ``fedavg``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmoe_flwr.config import DAY, AppConfig, ConfigError, Section, setting
from fedmoe_flwr.contract import GLOBAL
from fedmoe_flwr.weights import Weights
from fedmoe_flwr.wire import from_array_record, to_flower_record

from .fedavg import FedAvg


@dataclass(frozen=True)
class FlowerFedAvgParams(Section):
    """The peer's round timeout."""

    round_timeout: float = setting(0.0, "strategy.flower-fedavg.round-timeout", "seconds a "
                                   "round waits; later replies are dropped (0 = wait for all)",
                                   ge=0, le=DAY)


class FlowerFedAvg(FedAvg):
    """One global adapter, Flower's example-weighted average, global rounds."""

    name = "flower-fedavg"
    Params = FlowerFedAvgParams
    builds_gateway = False  # one adapter: nothing to merge

    @classmethod
    def check_run(cls, cfg: AppConfig) -> None:
        """Refuse privacy: the peer is Flower's FedAvg as shipped, without DP."""
        if cfg.privacy.enabled:
            raise ConfigError("strategy 'flower-fedavg' is the non-private peer baseline "
                              "(Flower's FedAvg as it ships); privacy.clip must be 0 (use "
                              "strategy.name = 'fedavg' for private synchronous rounds)")

    def adapter_for(self, specialty: str) -> str:
        """Every node trains the one global adapter."""
        return GLOBAL

    def _scope(self, specialty: str) -> str:
        return "all"  # one barrier for the federation, as Flower's FedAvg rounds are

    def average(self, updates: list[tuple[Weights, int]]) -> Weights:
        """Flower's ``aggregate_arrayrecords`` over the round's (validated) replies."""
        from flwr.app import MetricRecord, RecordDict
        from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

        replies = [RecordDict({"arrays": to_flower_record(w),
                               "metrics": MetricRecord({"num-examples": n})})
                   for w, n in updates]
        return from_array_record(aggregate_arrayrecords(replies, "num-examples"))
