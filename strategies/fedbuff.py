"""FedBuff: buffered asynchronous aggregation (Nguyen et al. 2022).

"Federated Learning with Buffered Asynchronous Aggregation", AISTATS 2022,
arXiv:2106.06639.  Per specialty, client deltas (``w_client - w_base``, where
``w_base`` is the adapter the node trained from) are buffered with weight
``1 / sqrt(1 + tau)``; when ``K = strategy.buffer-size`` have arrived the
server steps ``w <- w + eta_g * mean(weighted deltas)`` and bumps the
version.  Staleness ``tau`` is in expert versions, measured on arrival.
"""

from __future__ import annotations

from typing import Any

from fedmoe_flwr.aggregation import Weights, fedbuff_apply, fedbuff_staleness_weight
from fedmoe_flwr.experts import ExpertState

from .base import AsyncStrategy, MergeResult


class FedBuff(AsyncStrategy):
    """FedBuff with a per-specialty buffer of ``K`` staleness-weighted deltas."""

    name = "fedbuff"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.buffer_size = self.cfg.strategy.buffer_size
        self.server_lr = self.cfg.strategy.server_lr
        self.buffers: dict[str, list[tuple[Weights, float]]] = {}

    def merge(self, expert: ExpertState, update: Weights, base: Weights, staleness: int,
              num_examples: int) -> MergeResult:
        """Buffer the delta; apply the buffer when it holds K deltas."""
        scale = fedbuff_staleness_weight(staleness)
        buffer = self.buffers.setdefault(expert.specialty, [])
        buffer.append(({k: update[k] - base[k] for k in update}, scale))
        if len(buffer) < self.buffer_size:
            return MergeResult(None, scale)
        deltas, scales = zip(*buffer, strict=True)
        buffer.clear()
        return MergeResult(fedbuff_apply(expert.weights, list(deltas), list(scales),
                                         self.server_lr), scale)
