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

from fedmoe_flwr.merge.rules import fedbuff_apply, fedbuff_staleness_weight
from fedmoe_flwr.weights import Weights

from .base import Outcome, Strategy, Update


class FedBuff(Strategy):
    """FedBuff with a per-specialty buffer of ``K`` staleness-weighted deltas."""

    name = "fedbuff"

    def __init__(self, cfg: Any, **kwargs: Any) -> None:
        super().__init__(cfg, **kwargs)
        self.buffers: dict[str, list[tuple[Weights, float]]] = {}

    def on_update(self, update: Update, current: Weights, now: float) -> Outcome:
        """Buffer the delta; apply the buffer when it holds K deltas."""
        scale = fedbuff_staleness_weight(update.staleness)
        buffer = self.buffers.setdefault(update.specialty, [])
        buffer.append(({k: update.weights[k] - update.base[k] for k in update.weights}, scale))
        if len(buffer) < self.cfg.buffer_size:
            return Outcome(None, scale, "buffered")
        deltas, scales = zip(*buffer, strict=True)
        buffer.clear()
        return Outcome(fedbuff_apply(current, list(deltas), list(scales), self.cfg.server_lr),
                       scale)
