"""The privacy ledger: what each node's updates have spent, and which nodes are out of budget.

Counted on the server from the train replies it receives (each is one release
of a node's clipped, noised delta; a reply the server then rejects was still
released).  Epsilon per node follows :func:`fedmoe_flwr.privacy.epsilon_spent`;
an expert's is the largest of its nodes' (nodes hold disjoint data, so their
guarantees do not add up).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from fedmoe_flwr.config import PrivacyConfig
from fedmoe_flwr.privacy import epsilon_of_mu

log = logging.getLogger("fedmoe.server")


class PrivacyLedger:
    """Releases per node, epsilon per node and expert, and the budget check.

    Each node's privacy loss is kept as a Gaussian-DP ``mu`` (squares add up
    under composition).  ``privacy.mode = local``: every update the node sends
    is one release of sensitivity 1 clip at noise ``z``: ``mu^2 += 1 / z^2``.
    ``central``: a release is a merged buffered step (FedBuff's K updates, a
    FedAvg round) whose sum the server noised once; a node with ``k`` updates
    in it moved the sum by at most ``k`` clips: ``mu^2 += (k / z)^2``.
    """

    def __init__(self, cfg: PrivacyConfig) -> None:
        self.cfg = cfg
        self.central = cfg.mode == "central"
        self.releases: Counter = Counter()  # node id -> releases it took part in
        self.mu2: Counter = Counter()  # node id -> accumulated mu^2
        self.specialty: dict[int, str] = {}
        self.spent_nodes: set[int] = set()  # nodes no longer sent train messages

    @property
    def enabled(self) -> bool:
        """Whether updates are noised, so that epsilon is finite."""
        return self.cfg.noise_multiplier > 0

    def epsilon(self, node_id: int, extra: int = 0) -> float:
        """Epsilon of a node after its releases so far (plus ``extra`` single releases)."""
        z = self.cfg.noise_multiplier
        mu2 = self.mu2[node_id] + extra / z**2
        return epsilon_of_mu(round(mu2 ** 0.5, 12), self.cfg.delta)

    def record(self, node_id: int, specialty: str) -> float:
        """A node sent an update; local mode counts it as a release. Returns epsilon now."""
        self.specialty[node_id] = specialty
        if not self.central:
            self.releases[node_id] += 1
            self.mu2[node_id] += 1 / self.cfg.noise_multiplier ** 2
        return self.epsilon(node_id)

    def release(self, node_ids: list[int]) -> None:
        """Central mode: one noised sum was published holding these nodes' updates."""
        if not self.central:
            return
        for node_id, k in Counter(node_ids).items():
            self.releases[node_id] += 1
            self.mu2[node_id] += (k / self.cfg.noise_multiplier) ** 2

    def may_train(self, node_id: int) -> bool:
        """False once the node's next update would spend more than ``privacy.max-epsilon``."""
        budget = self.cfg.max_epsilon
        if not budget or not self.enabled:
            return True
        if node_id in self.spent_nodes:
            return False
        if self.epsilon(node_id, extra=1) <= budget:
            return True
        self.spent_nodes.add(node_id)
        log.warning("node %s has spent its privacy budget (epsilon %.3f after %d releases; "
                    "privacy.max-epsilon = %g): no more training for it", node_id,
                    self.epsilon(node_id), self.releases[node_id], budget)
        return False

    def summary(self) -> dict[str, Any]:
        """The ``privacy`` block of ``summary.json``."""
        nodes = {str(n): {"specialty": self.specialty.get(n, ""), "releases": k,
                          "epsilon": round(self.epsilon(n), 4),
                          "budget_spent": n in self.spent_nodes}
                 for n, k in sorted(self.releases.items())}
        experts: dict[str, float] = {}
        for n in self.releases:
            s = self.specialty.get(n, "")
            experts[s] = max(experts.get(s, 0.0), round(self.epsilon(n), 4))
        return {"mode": self.cfg.mode, "clip": self.cfg.clip,
                "noise_multiplier": self.cfg.noise_multiplier, "delta": self.cfg.delta,
                "max_epsilon": self.cfg.max_epsilon,
                "accountant": "Gaussian DP, exact composition (no subsampling)",
                "nodes": nodes, "experts": dict(sorted(experts.items()))}
