"""Train replies: judge each one, hand it to the strategy, publish what the strategy merged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from flwr.app import RecordDict

from fedmoe_flwr import contract as C
from fedmoe_flwr.config import AppConfig
from fedmoe_flwr.merge.validation import UpdateRejected, check_weights, validate_update
from fedmoe_flwr.server.experts import ExpertState
from fedmoe_flwr.server.federation import Federation, NonFiniteMerge
from fedmoe_flwr.server.intake import TrainReport, check_norm, guarded, parse_train_reply
from fedmoe_flwr.server.ledger import PrivacyLedger
from fedmoe_flwr.server.messenger import Flight, content_bytes
from fedmoe_flwr.server.nodes import NodeInfo
from fedmoe_flwr.server.summary import RunStats
from strategies.base import DueMerge, Outcome, Strategy, Update

log = logging.getLogger("fedmoe.server")


class UpdateDesk:
    """Where train replies arrive: validated, merged by the strategy, published, logged."""

    def __init__(self, cfg: AppConfig, federation: Federation, strategy: Strategy,
                 stats: RunStats, clock: Callable[[], float], ledger: PrivacyLedger) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self.federation = federation
        self.strategy = strategy
        self.stats = stats
        self.clock = clock

    def receive(self, content: RecordDict, flight: Flight, node: NodeInfo | None, *,
                capped: bool = False) -> None:
        """Handle one train reply; every failure becomes a counted rejection.

        ``capped``: ``run.max-updates`` was reached, so a wanted reply is discarded.
        """
        if not self.strategy.expects(flight.node_id, flight.specialty):
            self._late(flight)
            return
        if capped:
            self.stats.discarded += 1
            return
        started = time.perf_counter()
        if self.ledger.enabled:  # released by the node, whatever the server makes of it
            self.ledger.record(flight.node_id, flight.specialty)
        wire = content_bytes(content)
        self.stats.bytes_received += wire
        try:
            report = guarded(parse_train_reply, content)
            update = guarded(self._judge, report, flight, node)
            outcome = self.strategy.on_update(update, self._expert(flight).weights,
                                              self.clock())
        except UpdateRejected as err:
            self._reject(flight, err.reason, err.detail)
            self.strategy.on_missing(flight.node_id)
            return
        expert = self._expert(flight)
        expert.examples_seen += update.num_examples
        expert.nodes.add(flight.node_id)
        expert.last_train_loss = report.train_loss
        expert.staleness[update.staleness] += 1
        if outcome.weights is not None and not self.publish(flight.specialty, outcome.weights):
            return
        self.stats.updates += 1
        seconds = time.perf_counter() - started
        self.stats.step_seconds.append(seconds)
        self.stats.update_bytes_out += flight.bytes_out
        self.stats.update_bytes_in += wire
        self._log(flight, update, outcome, report, seconds, wire)

    def publish(self, specialty: str, weights: dict) -> bool:
        """Publish merged weights; a non-finite merge is refused and counted."""
        try:
            self.federation.publish(specialty, weights)
        except NonFiniteMerge as err:
            self.stats.rejected["non-finite-merge"] += 1
            log.error("%s", err)
            self.federation.run_dir.log_event("rejected", specialty=specialty,
                                              reason="non-finite-merge", detail=str(err))
            return False
        return True

    def apply_due(self, merges: list[DueMerge]) -> None:
        """Publish merges the strategy made without a new reply (a closed round)."""
        for merge in merges:
            self.publish(merge.specialty, merge.weights)

    def _expert(self, flight: Flight) -> ExpertState:
        expert = self.federation.experts.get(flight.specialty)
        if expert is None:
            raise UpdateRejected("unknown-specialty", f"{flight.specialty!r}")
        return expert

    def _judge(self, report: TrainReport, flight: Flight, node: NodeInfo | None) -> Update:
        expert = self._expert(flight)
        base = flight.base_weights or expert.weights
        if report.is_delta:  # a compressed change from what was sent: checked, then applied
            check_weights(expert.weights, report.weights)
            report = replace(report, weights={k: base[k] + d for k, d in report.weights.items()},
                             is_delta=False)
        validate_update(expert.weights, report.weights, base_version=report.base_version,
                        current_version=expert.version)
        if report.base_version != flight.base_version:
            raise UpdateRejected("bad-version", f"reply says base version "
                                 f"{report.base_version}, the server sent {flight.base_version}")
        staleness = expert.version - report.base_version
        if staleness > self.cfg.strategy.max_staleness:
            raise UpdateRejected("too-stale", f"staleness {staleness} > max "
                                 f"{self.cfg.strategy.max_staleness}")
        weights = {k: v.astype(np.float32, copy=False) for k, v in report.weights.items()}
        check_norm(weights, base, expert.weights, self.cfg.strategy.max_update_norm)
        examples = report.num_examples
        if node is not None and examples > max(node.num_train, 1):
            self.stats.examples_capped += 1  # weight by at most the data the node registered
            examples = max(node.num_train, 1)
        return Update(flight.node_id, flight.specialty, weights, base, report.base_version,
                      staleness, examples)

    def _reject(self, flight: Flight, reason: str, detail: str) -> None:
        self.stats.rejected[reason] += 1
        log.warning("update from node %s (%s) rejected: %s: %s", flight.node_id,
                    flight.specialty, reason, detail)
        self.federation.run_dir.log_event("rejected", node=str(flight.node_id),
                                          specialty=flight.specialty, reason=reason,
                                          detail=detail)

    def _late(self, flight: Flight) -> None:
        self.stats.late += 1
        log.warning("late reply from node %s (%s) dropped: its round closed at the timeout",
                    flight.node_id, flight.specialty)
        self.federation.run_dir.log_event(
            "late", node=str(flight.node_id), specialty=flight.specialty,
            elapsed=round(self.clock() - self.federation.start, 3))

    def _log(self, flight: Flight, update: Update, outcome: Outcome,
             report: TrainReport, server_seconds: float, bytes_in: int) -> None:
        m = report.metrics
        expert = self._expert(flight)
        elapsed = self.clock() - self.federation.start
        result = f"-> v{expert.version:<3d}" if outcome.weights is not None else outcome.status
        eps = (f"  eps {self.ledger.epsilon(flight.node_id):.2f}" if self.ledger.enabled
               else "")
        log.info("%6.1fs  %-14s node %-20s tau=%-2d a=%.3f %-8s loss %.3f  (%d steps, %.1fs)%s",
                 elapsed, expert.specialty, flight.node_id, update.staleness, outcome.mixing,
                 result, report.train_loss, int(m[C.STEPS]), m[C.TRAIN_SECONDS], eps)
        round_trip = self.clock() - flight.sent_at
        process = m.get(C.PROCESS_SECONDS, 0.0)
        # What the node did not account for: message queueing and transfer both ways.
        other = round_trip - process - m[C.LOAD_SECONDS] - m[C.TRAIN_SECONDS]
        self.federation.run_dir.log_event(
            "update", elapsed=round(elapsed, 3), specialty=expert.specialty,
            node=str(flight.node_id), staleness=update.staleness, mixing=outcome.mixing,
            applied=outcome.weights is not None, version=expert.version,
            round_trip=round(round_trip, 3), **{C.PROCESS_SECONDS: round(process, 3)},
            transfer_wait=round(other, 3), server_seconds=round(server_seconds, 4),
            bytes_out=flight.bytes_out, bytes_in=bytes_in,
            **({"epsilon": round(self.ledger.epsilon(flight.node_id), 4)}
               if self.ledger.enabled else {}),
            backlog=self.federation.backlog(), **{k: m[k] for k in C.TRAIN_METRIC_KEYS},
            **{k: m[k] for k in (C.PROCESS_ID, C.DELTA_NORM) if k in m})
