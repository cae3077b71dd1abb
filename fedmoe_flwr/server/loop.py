"""The server loop over Flower's ``Grid``, shared by every strategy.

Flower ships only synchronous strategies, so the loop is written directly on
``Grid.push_messages`` / ``Grid.pull_messages`` (non-blocking, partial
results): register nodes, evaluate, then keep every node busy with its
adapter's newest weights, hand each reply to the intake and the strategy, and
stop on ``run.duration`` or ``run.max-updates``.  Error replies (node lost,
TTL expired) drop the node, which may rejoin; no reply can stop the loop.

This class is where the run's settings are taken apart: every room it builds
gets only what it uses (a plan, rules, the event log), never the whole config.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flwr.app import Message
from flwr.serverapp import Grid

from fedmoe_flwr.config import AppConfig
from fedmoe_flwr.events import NodeError, Refused, Resume, Start
from fedmoe_flwr.lora import lora_signature
from fedmoe_flwr.merge.validation import UpdateRejected
from fedmoe_flwr.routing.centroids import ROUTER_FILE, CentroidBook
from fedmoe_flwr.server.admission import Admission, AdmissionRules
from fedmoe_flwr.server.artifacts import RunDirectory
from fedmoe_flwr.server.dispatch import Dispatcher, TrainPlan
from fedmoe_flwr.server.evaluation import Evaluator
from fedmoe_flwr.server.federation import Federation, GatewayPlan
from fedmoe_flwr.server.guard import UpdateGuard
from fedmoe_flwr.server.guard_state import GuardKeeper
from fedmoe_flwr.server.ledger import PrivacyLedger
from fedmoe_flwr.server.load import LoadMeter
from fedmoe_flwr.server.messenger import Flight, Messenger
from fedmoe_flwr.server.nodes import NodeTable
from fedmoe_flwr.server.policy import CentralNoise, Strategy
from fedmoe_flwr.server.registration import Registrar
from fedmoe_flwr.server.resume import ResumeState
from fedmoe_flwr.server.summary import RunStats, RunTotals, write_summary
from fedmoe_flwr.server.updates import IntakeRules, UpdateDesk

log = logging.getLogger("fedmoe.server")

class FederationLoop:
    """Runs one federation: registration, training with a strategy, evaluation, summary.

    Parameters
    ----------
    cfg : AppConfig
        The parsed run config.
    run_dir : RunDirectory
        Where checkpoints and events go.
    strategy : Strategy
        The merge policy (``strategies/``).
    clock, sleep, poll_interval : callables, float
        Injected time (tests drive the loop without waiting), and the pause when no reply came.
    """

    def __init__(self, *, cfg: AppConfig, run_dir: RunDirectory, strategy: Strategy,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_interval: float = 0.2,
                 resume: ResumeState | None = None, draw_plot: bool = True) -> None:
        self.cfg, self.strategy, self.clock, self.sleep = cfg, strategy, clock, sleep
        self.run_dir, self.events = run_dir, run_dir.events
        strategy.emit = self.events.write  # rounds and the like go to metrics.jsonl
        self.poll_interval = poll_interval
        self.draw_plot = draw_plot  # progress.png at the end (tests of the loop skip it)
        self.stats = RunStats()
        run = cfg.run
        self.nodes = NodeTable(run.rejoin_backoff)
        self.messenger = Messenger(run.message_ttl)
        self.federation = Federation(
            GatewayPlan(cfg.gateway, cfg.model, run.seed, strategy.builds_gateway), run_dir,
            self.events, clock)
        self.evaluator = Evaluator(self.federation, self.messenger, self.events, clock)
        self.admission = Admission(
            AdmissionRules(lora_signature(cfg.model), frozenset(run.specialties),
                           run.allow_new_specialties, run.max_experts),
            self.federation, self.nodes, CentroidBook(cfg.router.embedding_layer,
                                                      cfg.router.centroid_examples),
            strategy.adapter_for, self.events, lambda doc: run_dir.write_json(ROUTER_FILE, doc))
        self.ledger = PrivacyLedger(cfg.privacy)
        ffa = cfg.model.lora_variant == "ffa"
        central = cfg.privacy.enabled and cfg.privacy.mode == "central"
        if central:
            strategy.dp = CentralNoise(cfg.privacy.clip, cfg.privacy.noise_multiplier)
        self.desk = UpdateDesk(IntakeRules(cfg.strategy.max_staleness,
                                           cfg.strategy.max_update_norm, ffa,
                                           cfg.privacy.clip if central else 0.0),
                               self.federation, strategy, self.stats, self.ledger, self.events,
                               clock, UpdateGuard(cfg.robust), self._quarantine)
        self.dispatcher = Dispatcher(TrainPlan(cfg.train, run.seed, cfg.comm.compression, ffa),
                                     self.messenger, self.ledger, clock)
        self.registrar = Registrar(self.nodes, self.messenger, clock)
        self.load = LoadMeter(clock)
        self.stopping = False
        self._updates_at_start = 0
        self.guard_keeper = GuardKeeper(self.desk.guard, run_dir.root, clock)
        if resume is not None:
            self._resume(resume)

    @property
    def experts(self) -> dict[str, Any]:
        """The experts by adapter name (the federation's)."""
        return self.federation.experts

    def _resume(self, state: ResumeState) -> None:
        self.federation.resume(state.experts, state.gateway_version)
        self.stats.updates = self._updates_at_start = state.updates
        if state.guard is not None:  # the old run's robust memory, quarantines included
            self.guard_keeper.resume(*state.guard, self._quarantine)
        if state.router is not None:
            self.run_dir.write_json(ROUTER_FILE, state.router)
        versions = self.federation.versions()
        log.info("resuming from %s: %s; %d updates so far", state.source, versions, state.updates)
        self.events.write(Resume(source=str(state.source), versions=versions))

    # ------------------------------------------------------------------ phases
    def run(self, grid: Grid) -> dict[str, Any]:
        """Register nodes, train until a stop condition, evaluate, and summarise."""
        try:
            return self._run(grid)
        finally:
            self.federation.close()

    def _run(self, grid: Grid) -> dict[str, Any]:
        self.registrar.register(grid, self.poll, set(self.cfg.run.specialties),
                                self.cfg.run.register_timeout)
        fed = self.federation
        fed.refresh_gateway()
        self._evaluate_blocking(grid, "initial")
        fed.start = self.clock()
        self.load = LoadMeter(self.clock)  # windows count training time, not registration
        self.events.write(Start(strategy=self.strategy.name, nodes=len(self.nodes.registered)))
        log.info("training %d adapter(s) on %d node(s) with %s for %.0fs", len(self.experts),
                 len(self.nodes.registered), self.strategy.name, self.cfg.run.duration)
        self._train(grid)
        self.stopping = True
        self._drain(grid)
        fed.refresh_gateway()
        self._evaluate_blocking(grid, "final")
        fed.checkpoint_all()
        self.guard_keeper.save(final=True)
        totals = RunTotals(self.strategy.name, self.clock() - fed.start, self.stats,
                           self.messenger.bytes_sent, self.cfg.comm.compression,
                           self.ledger.summary() if self.ledger.enabled else None)
        return write_summary(self.run_dir, totals, fed, self.evaluator, self.nodes,
                             self.draw_plot)

    def _train(self, grid: Grid) -> None:
        last_eval = self.clock()
        every = self.cfg.run.eval_every
        while not self._done():
            if self.registrar.due():
                self.registrar.query(grid)
            if every and self.clock() - last_eval >= every:
                self.federation.refresh_gateway()  # evaluate the experts as they are
                self.evaluator.push(grid, self.nodes.registered.values(), "periodic")
                last_eval = self.clock()
            self._step(grid)

    def _drain(self, grid: Grid) -> None:
        """Stop dispatching; merge the updates still in flight for a grace period."""
        deadline = self.clock() + self.cfg.run.drain_timeout
        while self.messenger.count("train") and self.clock() < deadline:
            self._step(grid)
        dropped = self.messenger.drop(lambda f: f.kind == "train")
        if dropped:
            log.info("stopped waiting for %d in-flight update(s)", len(dropped))

    def _evaluate_blocking(self, grid: Grid, tag: str) -> None:
        pending = self.evaluator.push(grid, self.nodes.registered.values(), tag)
        deadline = self.clock() + self.cfg.run.message_ttl
        while self.messenger.any_of(pending) and self.clock() < deadline:
            self.poll(grid)
        for flight in self.messenger.drop(lambda f: f.kind == "evaluate" and f.tag == tag):
            log.warning("evaluation by node %s timed out", flight.node_id)

    # ------------------------------------------------------------------ one iteration
    def _step(self, grid: Grid) -> None:
        self.poll(grid)
        fed = self.federation
        self.desk.apply_due(self.strategy.on_tick(self.clock(), fed.versions()))
        fed.tick()
        if not (self.stopping or self._cap_reached()):
            self.dispatcher.send(grid, self.strategy, self.nodes, fed.experts)
        self.load.report_if_due(self.events, self.clock() - fed.start, fed.backlog(),
                                self.messenger.count("train"))
        self.guard_keeper.save()

    def poll(self, grid: Grid) -> int:
        """Pull every available reply and handle it; returns how many arrived."""
        replies = self.messenger.pull(grid)
        started = time.perf_counter()
        for reply, flight in replies:
            self._on_reply(reply, flight)
        self.load.pulled(len(replies), time.perf_counter() - started)
        if not replies:
            self.sleep(self.poll_interval)
        return len(replies)

    def _on_reply(self, reply: Message, flight: Flight) -> None:
        if reply.has_error():
            self._on_error(reply, flight)
        elif flight.kind == "query":
            self.admission.receive(reply.content, flight.node_id)
        elif flight.kind == "train":  # max-updates is a hard cap: later arrivals are dropped
            self.desk.receive(reply.content, flight, self.nodes.registered.get(flight.node_id),
                              capped=self._cap_reached())
        elif flight.kind == "evaluate":
            try:
                self.evaluator.receive(reply.content, flight)
            except UpdateRejected as err:
                self.stats.rejected[f"eval-{err.reason}"] += 1
                log.warning("evaluation reply of node %s rejected: %s", flight.node_id, err)

    def _quarantine(self, node_id: int, reason: str) -> None:
        """Refuse a node for the rest of the run: no message is sent to it again."""
        log.warning("node %s quarantined: %s", node_id, reason)
        self.events.write(Refused(node=str(node_id), reason=f"quarantined: {reason}"))
        self.nodes.quarantine(node_id, f"quarantined: {reason}")
        self.messenger.drop(lambda f: f.node_id == node_id)
        self.strategy.on_missing(node_id)

    def _on_error(self, reply: Message, flight: Flight) -> None:
        err = reply.error
        self.stats.errors[int(err.code)] += 1
        log.warning("node %s: error reply to %s (code %s): %s; dropping it until it rejoins",
                    flight.node_id, flight.kind, err.code, err.reason)
        self.events.write(NodeError(node=str(flight.node_id), message_kind=flight.kind,
                                    code=int(err.code), reason=str(err.reason)))
        self.nodes.lose(flight.node_id, self.clock())
        self.messenger.drop(lambda f: f.node_id == flight.node_id)
        self.strategy.on_missing(flight.node_id)

    # ------------------------------------------------------------------ stop conditions
    def _cap_reached(self) -> bool:
        cap = self.cfg.run.max_updates  # counts this run's updates (not a resumed run's)
        return bool(cap and self.stats.updates - self._updates_at_start >= cap)

    def _done(self) -> bool:
        return (self.clock() - self.federation.start >= self.cfg.run.duration
                or self._cap_reached() or self.run_dir.stop_requested())
