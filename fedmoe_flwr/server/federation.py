"""The federation's state on the server: experts, the gateway, and their checkpoints.

Every change of an expert goes through :meth:`Federation.publish`, which
refuses non-finite weights (so no bad merge ever reaches disk or a node),
then moves the weights, the version and the counters of the updates merged
into them together, and queues the checkpoint and the gateway rebuild.  An
update a strategy buffers is held here until the merge that contains it is
published (or dropped with it), so the gateway's example weighting only ever
counts what the experts really hold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fedmoe_flwr.config import GatewayConfig, ModelConfig
from fedmoe_flwr.events import EventLog, Version
from fedmoe_flwr.merge.gateway import build_gateway, gateway_coefficients, gateway_seed
from fedmoe_flwr.server.artifacts import RunDirectory
from fedmoe_flwr.server.background import BackgroundWorker
from fedmoe_flwr.server.experts import Contribution, ExpertState, GatewayState
from fedmoe_flwr.weights import Weights, all_finite

log = logging.getLogger("fedmoe.server")


class NonFiniteMerge(ValueError):
    """A merge produced NaN or Inf: the expert keeps its previous weights."""


@dataclass(frozen=True)
class GatewayPlan:
    """How the gateway is built: the merge settings, the experts' LoRA shape, the seed."""

    gateway: GatewayConfig
    model: ModelConfig
    seed: int
    enabled: bool = True  # False: the strategy trains one shared adapter (nothing to merge)


class Federation:
    """Experts by adapter name and the gateway built from them, checkpointed on every change.

    The merge path only swaps arrays and bumps versions: checkpoints are
    written by a background worker (newest version per adapter), and the
    gateway is rebuilt by another, at most every ``gateway.refresh-every``
    seconds, so neither ever delays the next update.  ``refresh_gateway()``
    and ``flush()`` wait, for the points where the gateway must be current
    (start, evaluation, end).
    """

    def __init__(self, plan: GatewayPlan, run_dir: RunDirectory, events: EventLog,
                 clock: Callable[[], float]) -> None:
        self.plan = plan
        self.run_dir = run_dir
        self.events = events
        self.clock = clock
        self.start = 0.0  # set when training starts; events carry seconds since then
        self.experts: dict[str, ExpertState] = {}
        self.gateway: GatewayState | None = None
        self._held: dict[str, list[Contribution]] = {}  # buffered, not yet merged
        self.last_merged: list[Contribution] = []
        self._gateway_first_version = 0
        self._writer = BackgroundWorker("checkpoint")
        self._builder = BackgroundWorker("gateway")
        self._gateway_due_at = -math.inf  # clock time of the next allowed rebuild
        self._gateway_stale = False  # an expert changed since the last rebuild was queued

    def resume(self, experts: dict[str, ExpertState], gateway_version: int) -> None:
        """Continue an old run: experts with weights, versions and counters; gateway version."""
        self.experts = dict(experts)
        for expert in self.experts.values():
            self.checkpoint(expert)
        self._gateway_first_version = gateway_version + 1

    def add_expert(self, name: str, weights: Weights) -> ExpertState:
        """A specialty's first node brought its initial adapter: create the expert."""
        expert = self.experts[name] = ExpertState(name, weights)
        self.checkpoint(expert)
        if self.gateway is not None:  # a late specialty joins the gateway too
            self.refresh_gateway(wait=False)
        return expert

    def hold(self, name: str, contribution: Contribution) -> None:
        """An update the strategy buffered: counted once the merge holding it is published."""
        self._held.setdefault(name, []).append(contribution)

    def publish(self, name: str, weights: Weights,
                merged: Iterable[Contribution] = ()) -> ExpertState:
        """Make ``weights`` the expert's next version; refused (unchanged) when not finite.

        ``merged`` are the updates this merge holds besides the ones held back
        earlier for it; a refused merge drops those held updates, as the
        strategy dropped its buffer.
        """
        expert = self.experts[name]
        contributions = [*self._held.pop(name, []), *merged]
        if not all_finite(weights):
            raise NonFiniteMerge(f"merging into {name} v{expert.version} gave NaN/Inf; the "
                                 f"expert keeps its weights ({len(contributions)} update(s) "
                                 f"dropped)")
        expert.absorb(weights, contributions)
        self.last_merged = contributions  # what this version holds (central DP's release)
        self.checkpoint(expert)
        self.events.write(Version(adapter=name, version=expert.version,
                                  elapsed=round(self.clock() - self.start, 3)))
        self._gateway_stale = True
        self.tick()
        return expert

    def record_eval(self, domain: str, losses: dict[str, float]) -> None:
        """Held-out losses of every adapter on ``domain`` (they go into meta.json)."""
        for name, loss in losses.items():
            target = self.gateway if name == "gateway" else self.experts.get(name)
            if target is not None:
                target.eval_losses[domain] = loss

    def tick(self) -> None:
        """Queue a gateway rebuild if an expert changed and the refresh interval has passed."""
        if self._gateway_stale and self.clock() >= self._gateway_due_at:
            self.refresh_gateway(wait=False)

    def refresh_gateway(self, wait: bool = True) -> None:
        """Rebuild the gateway from the experts as they are now, and checkpoint it.

        The experts are read here, on the caller's thread; the build and the
        write happen on the gateway worker.  ``wait`` returns only once done.
        """
        if not self.plan.enabled:
            return
        snapshot = {s: (e.weights, e.version, e.examples_seen) for s, e in self.experts.items()}
        self._gateway_stale = False
        self._gateway_due_at = self.clock() + self.plan.gateway.refresh_every
        self._builder.submit("build", lambda: self._build_gateway(snapshot))
        if wait:
            self._builder.flush()

    def _build_gateway(self, snapshot: dict[str, tuple[Weights, int, int]]) -> None:
        g, m = self.plan.gateway, self.plan.model
        coeffs = gateway_coefficients({s: n for s, (_, _, n) in snapshot.items()}, g.weighting)
        previous = self.gateway
        version = previous.version + 1 if previous else self._gateway_first_version
        merged = build_gateway({s: w for s, (w, _, _) in snapshot.items()}, coeffs,
                               g.method, rank=m.lora_r, alpha=m.lora_alpha, svd_rank=g.rank,
                               density=g.density, seed=gateway_seed(self.plan.seed, version))
        if not all_finite(merged.weights):
            log.error("gateway v%d would hold NaN/Inf; keeping the previous one", version)
            return
        gateway = GatewayState(merged.weights, g.method, version, coeffs,
                               {s: v for s, (_, v, _) in snapshot.items()},
                               previous.eval_losses if previous else {},
                               merged.rank, merged.alpha)
        self._save_gateway(gateway)
        self.gateway = gateway  # published once on disk, so readers never see it first

    def checkpoint(self, expert: ExpertState) -> None:
        """Queue a write of one expert's current weights and meta (atomic on disk)."""
        weights, version, meta = expert.weights, expert.version, expert.meta()
        self._writer.submit(f"experts/{expert.specialty}", lambda: self.run_dir.save_adapter(
            f"experts/{expert.specialty}", weights, version, meta))

    def checkpoint_gateway(self) -> None:
        """Queue a write of the gateway's current weights and meta (after its evaluation)."""
        gw = self.gateway
        if gw is not None:
            meta = gw.meta()
            self._builder.submit("save", lambda: self._save_gateway(gw, meta))

    def _save_gateway(self, gw: GatewayState, meta: dict | None = None) -> None:
        self.run_dir.save_adapter("gateway", gw.weights, gw.version, meta or gw.meta(), gw.rank,
                                  gw.alpha)

    def checkpoint_all(self) -> None:
        """Final checkpoints (meta now holds the final evaluation), written before returning."""
        for expert in self.experts.values():
            self.checkpoint(expert)
        self.checkpoint_gateway()
        self.flush()

    def flush(self) -> None:
        """Wait for every queued checkpoint and gateway rebuild (a failed write raises)."""
        self._builder.flush()
        self._writer.flush()

    def close(self) -> None:
        """Finish queued work and stop the background workers."""
        try:
            self._builder.close()
        finally:
            self._writer.close()

    def backlog(self) -> int:
        """Checkpoint writes and gateway rebuilds queued or running."""
        return self._writer.pending() + self._builder.pending()

    def adapters(self) -> dict[str, Weights]:
        """Every adapter to evaluate: the experts, then the gateway."""
        out = {s: e.weights for s, e in self.experts.items()}
        if self.gateway is not None:
            out["gateway"] = self.gateway.weights
        return out

    def versions(self) -> dict[str, int]:
        """Each expert's current version."""
        return {s: e.version for s, e in self.experts.items()}
