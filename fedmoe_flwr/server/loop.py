"""The server loop over Flower's ``Grid``, shared by every strategy.

Flower ships only synchronous strategies, so the loop is written directly on
``Grid.push_messages`` / ``Grid.pull_messages`` (non-blocking, partial
results): register nodes, evaluate, then keep every node busy with its
expert's newest weights, hand each reply to the intake and the strategy, and
stop on ``run.duration`` or ``run.max-updates``.  Error replies (node lost,
TTL expired) drop the node, which may rejoin; no reply can stop the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedmoe_flwr import contract as C
from fedmoe_flwr.config import AppConfig
from fedmoe_flwr.merge.validation import UpdateRejected
from fedmoe_flwr.routing.centroids import CentroidBook
from fedmoe_flwr.server.admission import Admission
from fedmoe_flwr.server.artifacts import RunDirectory
from fedmoe_flwr.server.dispatch import dispatch
from fedmoe_flwr.server.evaluation import Evaluator
from fedmoe_flwr.server.federation import Federation
from fedmoe_flwr.server.ledger import PrivacyLedger
from fedmoe_flwr.server.load import LoadMeter
from fedmoe_flwr.server.messenger import Flight, Messenger
from fedmoe_flwr.server.nodes import NodeTable
from fedmoe_flwr.server.resume import ResumeState
from fedmoe_flwr.server.summary import RunStats, write_summary
from fedmoe_flwr.server.updates import UpdateDesk
from strategies.base import Strategy

log = logging.getLogger("fedmoe.server")

NODE_RECHECK_S = 5.0  # how often grid.get_node_ids() is re-read for joiners


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
    clock, sleep : callables
        Injected so tests drive the loop without waiting in real time.
    poll_interval : float
        Seconds between pulls when nothing arrived.
    """

    def __init__(self, *, cfg: AppConfig, run_dir: RunDirectory, strategy: Strategy,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll_interval: float = 0.2,
                 resume: ResumeState | None = None, draw_plot: bool = True) -> None:
        self.cfg, self.strategy, self.clock, self.sleep = cfg, strategy, clock, sleep
        self.poll_interval = poll_interval
        self.draw_plot = draw_plot  # progress.png at the end (tests of the loop skip it)
        self.stats = RunStats()
        self.nodes = NodeTable(cfg.run.rejoin_backoff)
        self.messenger = Messenger(cfg.run.message_ttl)
        self.federation = Federation(cfg, run_dir, clock)
        self.evaluator = Evaluator(self.federation, self.messenger, clock)
        self.admission = Admission(cfg, self.federation, self.nodes,
                                   CentroidBook(cfg.router.embedding_layer))
        self.ledger = PrivacyLedger(cfg.privacy)
        self.desk = UpdateDesk(cfg, self.federation, strategy, self.stats, clock, self.ledger)
        self.load = LoadMeter(clock)
        self.stopping = False
        self._updates_at_start = 0
        if resume is not None:
            self._resume(resume, run_dir)

    @property
    def experts(self) -> dict[str, Any]:
        """The experts by specialty (the federation's)."""
        return self.federation.experts

    def _resume(self, state: ResumeState, run_dir: RunDirectory) -> None:
        self.federation.resume(state)
        self.stats.updates = self._updates_at_start = state.updates
        if state.router is not None:
            run_dir.write_json(C.ROUTER_FILE, state.router)
        log.info("resuming from %s: %s; %d updates so far", state.source,
                 ", ".join(f"{s} v{e.version}" for s, e in sorted(self.experts.items())),
                 state.updates)
        run_dir.log_event("resume", source=str(state.source),
                          versions=self.federation.versions())

    # ------------------------------------------------------------------ phases
    def run(self, grid: Grid) -> dict[str, Any]:
        """Register nodes, train until a stop condition, evaluate, and summarise."""
        try:
            return self._run(grid)
        finally:
            self.federation.close()

    def _run(self, grid: Grid) -> dict[str, Any]:
        self._register(grid)
        self.federation.refresh_gateway()
        self._evaluate_blocking(grid, "initial")
        fed = self.federation
        fed.start = self.clock()
        self.load = LoadMeter(self.clock)  # windows count training time, not registration
        fed.run_dir.log_event("start", strategy=self.strategy.name,
                              nodes=len(self.nodes.registered))
        log.info("training %d expert(s) on %d node(s) with %s for %.0fs", len(self.experts),
                 len(self.nodes.registered), self.strategy.name, self.cfg.run.duration)
        last_check = last_eval = self.clock()
        while not self._done():
            if self.clock() - last_check >= NODE_RECHECK_S:
                self._query(grid)
                last_check = self.clock()
            every = self.cfg.run.eval_every
            if every and self.clock() - last_eval >= every:
                fed.refresh_gateway()  # evaluate the gateway of the experts as they are
                self.evaluator.push(grid, self.nodes.registered.values(), "periodic")
                last_eval = self.clock()
            self._step(grid)
        self.stopping = True
        self._drain(grid)
        fed.refresh_gateway()
        self._evaluate_blocking(grid, "final")
        fed.checkpoint_all()
        return write_summary(self.strategy.name, self.clock() - fed.start, self.stats,
                             self.messenger.bytes_sent, fed, self.evaluator, self.nodes,
                             self.ledger.summary() if self.ledger.enabled else None,
                             self.cfg.comm.compression, self.draw_plot)

    def _register(self, grid: Grid) -> None:
        t0, last_check = self.clock(), -1e18
        want = set(self.cfg.run.specialties)
        while self.clock() - t0 < self.cfg.run.register_timeout:
            if self.clock() - last_check >= NODE_RECHECK_S or not self.messenger.flights:
                self._query(grid)
                last_check = self.clock()
            self.poll(grid)
            if self.nodes.specialties() >= want:
                break
        if not self.nodes.registered:
            raise RuntimeError(
                f"no node registered within {self.cfg.run.register_timeout:.0f}s "
                f"(run.register-timeout); refused: {self.nodes.refused or 'none'}")
        missing = sorted(want - self.nodes.specialties())
        if missing:
            log.warning("no node for %s yet; training the others and waiting for them", missing)

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
        self.desk.apply_due(self.strategy.on_tick(self.clock(), self.federation.versions()))
        fed = self.federation
        fed.tick()
        self._dispatch(grid)
        self.load.report_if_due(fed.run_dir, self.clock() - fed.start, fed.backlog(),
                                self.messenger.count("train"))

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

    def _on_error(self, reply: Message, flight: Flight) -> None:
        err = reply.error
        self.stats.errors[int(err.code)] += 1
        log.warning("node %s: error reply to %s (code %s): %s; dropping it until it rejoins",
                    flight.node_id, flight.kind, err.code, err.reason)
        self.federation.run_dir.log_event("error", node=str(flight.node_id), kind=flight.kind,
                                          code=int(err.code), reason=str(err.reason))
        self.nodes.lose(flight.node_id, self.clock())
        self.messenger.drop(lambda f: f.node_id == flight.node_id)
        self.strategy.on_missing(flight.node_id)

    # ------------------------------------------------------------------ sending
    def _query(self, grid: Grid) -> None:
        now = self.clock()
        todo = self.nodes.to_query(grid.get_node_ids(), self.messenger.busy(), now)
        m = self.messenger
        m.push(grid, [(m.message(RecordDict({C.CONFIG: ConfigRecord({})}), n, "query"),
                       Flight(n, "query", now)) for n in todo])

    def _dispatch(self, grid: Grid) -> None:
        if not (self.stopping or self._cap_reached()):
            dispatch(grid, self.cfg, self.strategy, self.nodes, self.experts, self.messenger,
                     self.ledger, self.clock)

    # ------------------------------------------------------------------ stop conditions
    def _cap_reached(self) -> bool:
        cap = self.cfg.run.max_updates  # counts this run's updates (not a resumed run's)
        return bool(cap and self.stats.updates - self._updates_at_start >= cap)

    def _done(self) -> bool:
        return (self.clock() - self.federation.start >= self.cfg.run.duration
                or self._cap_reached() or self.federation.run_dir.stop_requested())

