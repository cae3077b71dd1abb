"""FedBuff: buffered asynchronous aggregation (Nguyen et al. 2022).

"Federated Learning with Buffered Asynchronous Aggregation", AISTATS 2022,
arXiv:2106.06639.  Per specialty, client deltas (``w_client - w_base``, where
``w_base`` is the adapter the node trained from) are buffered with weight
``1 / sqrt(1 + tau)``; when ``K = strategy.fedbuff.buffer-size`` have arrived the
server steps ``w <- w + eta_g * mean(weighted deltas)`` and bumps the
version.  Staleness ``tau`` is in expert versions, measured on arrival.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedmoe_flwr.config import Section, setting
from fedmoe_flwr.merge.robust import AGGREGATES, robust_average
from fedmoe_flwr.merge.rules import fedbuff_apply, fedbuff_staleness_weight
from fedmoe_flwr.privacy import noisy_sum
from fedmoe_flwr.server.policy import Outcome, Strategy, Update
from fedmoe_flwr.weights import Weights


@dataclass(frozen=True)
class FedBuffParams(Section):
    """FedBuff's buffer size and server learning rate."""

    buffer_size: int = setting(3, "strategy.fedbuff.buffer-size", "deltas buffered per expert "
                               "before one server step (K)", ge=1, le=10**4)
    server_lr: float = setting(1.0, "strategy.fedbuff.server-lr", "server learning rate eta_g",
                               gt=0, le=100)
    aggregate: str = setting("mean", "strategy.fedbuff.aggregate", "how the buffer's deltas "
                             "combine: mean (the paper), or per coordinate trimmed-mean or "
                             "median (robust to a lying node; 3 or more deltas)",
                             choices=AGGREGATES)
    trim: float = setting(0.2, "strategy.fedbuff.trim", "trimmed-mean: share of the largest "
                          "and of the smallest values dropped per coordinate", ge=0, lt=0.5)


class FedBuff(Strategy):
    """FedBuff with a per-adapter buffer of ``K`` staleness-weighted deltas."""

    name = "fedbuff"
    Params = FedBuffParams
    central_dp = True

    def __init__(self, params: FedBuffParams | None = None) -> None:
        super().__init__(params)
        self.buffers: dict[str, list[tuple[Weights, float]]] = {}

    def on_update(self, update: Update, current: Weights, now: float) -> Outcome:
        """Buffer the delta; apply the buffer when it holds K deltas."""
        scale = fedbuff_staleness_weight(update.staleness)
        buffer = self.buffers.setdefault(update.adapter, [])
        buffer.append(({k: update.weights[k] - update.base[k] for k in update.weights}, scale))
        if len(buffer) < self.params.buffer_size:
            return Outcome(None, scale, "buffered")
        deltas, scales = zip(*buffer, strict=True)
        buffer.clear()
        p = self.params
        if self.dp is not None:  # central DP: one noised sum of the (clipped) deltas
            total = noisy_sum([{k: np.float32(s) * v for k, v in d.items()}
                               for d, s in zip(deltas, scales, strict=True)], self.dp.std,
                              self.dp.rng)
            step = np.float32(p.server_lr / len(deltas))
            return Outcome({k: current[k] + step * total[k] for k in current}, scale)
        if p.aggregate == "mean":
            return Outcome(fedbuff_apply(current, list(deltas), list(scales), p.server_lr), scale)
        scaled = [{k: np.float32(s) * v for k, v in d.items()} for d, s in zip(deltas, scales,
                                                                              strict=True)]
        step = robust_average(scaled, [1.0] * len(scaled), p.aggregate, p.trim)
        return Outcome({k: current[k] + np.float32(p.server_lr) * step[k] for k in current},
                       scale)
