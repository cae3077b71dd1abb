"""The federation's state on the server: experts, the gateway, and their checkpoints.

Every change of an expert goes through :meth:`Federation.publish`, which
refuses non-finite weights (so no bad merge ever reaches disk or a node),
bumps the version, checkpoints atomically and rebuilds the gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fedmoe_flwr.config import AppConfig
from fedmoe_flwr.merge.gateway import build_gateway, gateway_coefficients, gateway_seed
from fedmoe_flwr.server.artifacts import RunDirectory
from fedmoe_flwr.server.experts import ExpertState, GatewayState
from fedmoe_flwr.server.resume import ResumeState
from fedmoe_flwr.weights import Weights, all_finite

log = logging.getLogger("fedmoe.server")


class NonFiniteMerge(ValueError):
    """A merge produced NaN or Inf: the expert keeps its previous weights."""


class Federation:
    """Experts by specialty and the gateway built from them, checkpointed on every change."""

    def __init__(self, cfg: AppConfig, run_dir: RunDirectory,
                 clock: Callable[[], float]) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.clock = clock
        self.start = 0.0  # set when training starts; events carry seconds since then
        self.experts: dict[str, ExpertState] = {}
        self.gateway: GatewayState | None = None
        self._gateway_first_version = 0

    def resume(self, state: ResumeState) -> None:
        """Continue an old run: experts with weights, versions and counters; gateway version."""
        self.experts = dict(state.experts)
        for expert in self.experts.values():
            self.checkpoint(expert)
        self._gateway_first_version = state.gateway_version + 1

    def add_expert(self, specialty: str, weights: Weights) -> ExpertState:
        """A specialty's first node brought its initial adapter: create the expert."""
        expert = self.experts[specialty] = ExpertState(specialty, weights)
        self.checkpoint(expert)
        if self.gateway is not None:  # a late specialty joins the gateway too
            self.refresh_gateway()
        return expert

    def publish(self, specialty: str, weights: Weights) -> ExpertState:
        """Make ``weights`` the expert's next version (refused when not finite)."""
        expert = self.experts[specialty]
        if not all_finite(weights):
            raise NonFiniteMerge(f"merging into {specialty} v{expert.version} gave NaN/Inf; "
                                 f"the expert keeps its weights")
        expert.weights = weights
        expert.version += 1
        expert.updates += 1
        self.checkpoint(expert)
        self.run_dir.log_event("version", specialty=specialty, version=expert.version,
                               elapsed=round(self.clock() - self.start, 3))
        self.refresh_gateway()
        return expert

    def refresh_gateway(self) -> None:
        """Rebuild the gateway from the current experts and checkpoint it (finite only)."""
        g, m = self.cfg.gateway, self.cfg.model
        coeffs = gateway_coefficients({s: e.examples_seen for s, e in self.experts.items()},
                                      g.weighting)
        version = self.gateway.version + 1 if self.gateway else self._gateway_first_version
        merged = build_gateway({s: e.weights for s, e in self.experts.items()}, coeffs,
                               g.method, rank=m.lora_r, alpha=m.lora_alpha, svd_rank=g.rank,
                               density=g.density, seed=gateway_seed(self.cfg.run.seed, version))
        if not all_finite(merged.weights):
            log.error("gateway v%d would hold NaN/Inf; keeping the previous one", version)
            return
        self.gateway = GatewayState(merged.weights, g.method, version, coeffs,
                                    {s: e.version for s, e in self.experts.items()},
                                    self.gateway.eval_losses if self.gateway else {},
                                    merged.rank, merged.alpha)
        self.checkpoint_gateway()

    def checkpoint(self, expert: ExpertState) -> None:
        """Write one expert's current weights and meta (atomic)."""
        self.run_dir.save_adapter(f"experts/{expert.specialty}", expert.weights,
                                  expert.version, expert.meta())

    def checkpoint_gateway(self) -> None:
        """Write the gateway's current weights and meta (atomic)."""
        gw = self.gateway
        if gw is not None:
            self.run_dir.save_adapter("gateway", gw.weights, gw.version, gw.meta(), gw.rank,
                                      gw.alpha)

    def checkpoint_all(self) -> None:
        """Final checkpoints (meta now holds the final evaluation)."""
        for expert in self.experts.values():
            self.checkpoint(expert)
        self.checkpoint_gateway()

    def adapters(self) -> dict[str, Weights]:
        """Every adapter to evaluate: the experts, then the gateway."""
        out = {s: e.weights for s, e in self.experts.items()}
        if self.gateway is not None:
            out["gateway"] = self.gateway.weights
        return out

    def versions(self) -> dict[str, int]:
        """Each expert's current version."""
        return {s: e.version for s, e in self.experts.items()}
