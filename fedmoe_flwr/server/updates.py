"""Train replies: judge each one, hand it to the strategy, publish what the strategy merged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from flwr.app import RecordDict

from fedmoe_flwr import events as ev
from fedmoe_flwr.contract import TrainMetrics, TrainReply
from fedmoe_flwr.lora import a_part, b_part
from fedmoe_flwr.merge.robust import difference
from fedmoe_flwr.merge.validation import UpdateRejected, check_weights, validate_update
from fedmoe_flwr.privacy import clip
from fedmoe_flwr.server.experts import Contribution, ExpertState
from fedmoe_flwr.server.federation import Federation, NonFiniteMerge
from fedmoe_flwr.server.guard import ROBUST_REASONS, UpdateGuard, UpdateStats
from fedmoe_flwr.server.intake import check_norm, guarded
from fedmoe_flwr.server.ledger import PrivacyLedger
from fedmoe_flwr.server.messenger import Flight, content_bytes
from fedmoe_flwr.server.nodes import NodeInfo
from fedmoe_flwr.server.policy import DueMerge, Outcome, Strategy, Update
from fedmoe_flwr.server.summary import RunStats
from fedmoe_flwr.weights import Weights

log = logging.getLogger("fedmoe.server")


@dataclass(frozen=True)
class IntakeRules:
    """The checks every update passes before a strategy sees it (``strategy.*``)."""

    max_staleness: int
    max_update_norm: float
    frozen_a: bool = False  # ffa: replies carry B only; A must never change
    central_clip: float = 0.0  # central DP: the server clips every delta to this norm too


class UpdateDesk:
    """Where train replies arrive: validated, merged by the strategy, published, logged."""

    def __init__(self, rules: IntakeRules, federation: Federation, strategy: Strategy,
                 stats: RunStats, ledger: PrivacyLedger, events: ev.EventLog,
                 clock: Callable[[], float], guard: UpdateGuard,
                 quarantine: Callable[[int, str], None]) -> None:
        self.rules = rules
        self.federation = federation
        self.strategy = strategy
        self.stats = stats
        self.ledger = ledger
        self.events = events
        self.clock = clock
        self.guard = guard  # robust checks and node strikes
        self.quarantine = quarantine  # a node that keeps lying: refused for the run

    def receive(self, content: RecordDict, flight: Flight, node: NodeInfo | None, *,
                capped: bool = False) -> None:
        """Handle one train reply; every failure becomes a counted rejection.

        ``capped``: ``run.max-updates`` was reached, so a wanted reply is discarded.
        """
        if not self.strategy.expects(flight.node_id, flight.adapter):
            self._late(flight)
            return
        if capped:
            self.stats.discarded += 1
            return
        started = time.perf_counter()
        if self.ledger.enabled:  # released by the node, whatever the server makes of it
            self.ledger.record(flight.node_id, node.specialty if node else flight.adapter)
        wire = content_bytes(content)
        self.stats.bytes_received += wire
        try:
            reply, weights = guarded(TrainReply.from_content, content)
            update, delta, robust = guarded(self._judge, reply, weights, flight, node)
            outcome = self.strategy.on_update(update, self._expert(flight).weights,
                                              self.clock())
        except UpdateRejected as err:
            self._reject(flight, err.reason, err.detail)
            self.strategy.on_missing(flight.node_id)
            if err.reason in ROBUST_REASONS and self.guard.strike(flight.node_id):
                self.quarantine(flight.node_id, f"{self.guard.strikes[flight.node_id]} "
                                f"updates refused by the robust checks (last: {err.reason})")
            return
        self.guard.accept(flight.adapter, update.weights, delta)
        contribution = Contribution(flight.node_id, update.num_examples, update.staleness,
                                    reply.metrics.train_loss)
        if outcome.weights is None:
            self.federation.hold(flight.adapter, contribution)
        elif not self.publish(flight.adapter, outcome.weights, [contribution]):
            return
        self.stats.updates += 1
        seconds = time.perf_counter() - started
        self.stats.step_seconds.append(seconds)
        self.stats.update_bytes_out += flight.bytes_out
        self.stats.update_bytes_in += wire
        self._log(flight, update, outcome, reply.metrics, seconds, wire, robust)

    def publish(self, adapter: str, weights: Weights,
                merged: list[Contribution] | None = None) -> bool:
        """Publish merged weights; a non-finite merge is refused and counted."""
        try:
            self.federation.publish(adapter, weights, merged or [])
            self.guard.remember(adapter, weights)  # a later exact repeat of it is a replay
            self.ledger.release([c.node_id for c in self.federation.last_merged])
        except NonFiniteMerge as err:
            self.stats.rejected["non-finite-merge"] += 1
            log.error("%s", err)
            self.events.write(ev.Rejected(adapter=adapter, reason="non-finite-merge",
                                          detail=str(err)))
            return False
        return True

    def apply_due(self, merges: list[DueMerge]) -> None:
        """Publish merges the strategy made without a new reply (a closed round)."""
        for merge in merges:
            self.publish(merge.adapter, merge.weights)

    def _expert(self, flight: Flight) -> ExpertState:
        expert = self.federation.experts.get(flight.adapter)
        if expert is None:
            raise UpdateRejected("unknown-specialty", f"{flight.adapter!r}")
        return expert

    def _judge(self, reply: TrainReply, weights: Weights, flight: Flight,
               node: NodeInfo | None) -> tuple[Update, Weights, UpdateStats]:
        expert = self._expert(flight)
        base = flight.base_weights or expert.weights
        m = reply.metrics
        if self.rules.frozen_a:
            weights = with_frozen_a(weights, expert.weights, reply.is_delta)
        if reply.is_delta:  # a compressed change from what was sent: checked, then applied
            check_weights(expert.weights, weights)
            weights = {k: base[k] + d for k, d in weights.items()}
        validate_update(expert.weights, weights, base_version=m.base_version,
                        current_version=expert.version)
        if m.base_version != flight.base_version:
            raise UpdateRejected("bad-version", f"reply says base version {m.base_version}, "
                                 f"the server sent {flight.base_version}")
        staleness = expert.version - m.base_version
        if staleness > self.rules.max_staleness:
            raise UpdateRejected("too-stale", f"staleness {staleness} > max "
                                 f"{self.rules.max_staleness}")
        weights = {k: v.astype(np.float32, copy=False) for k, v in weights.items()}
        check_norm(weights, base, expert.weights, self.rules.max_update_norm)
        delta = difference(weights, base)
        if self.rules.central_clip:  # the sum's sensitivity may not rest on a node's word
            delta, _ = clip(delta, self.rules.central_clip)
            weights = {k: base[k] + d for k, d in delta.items()}
        robust = self.guard.judge(flight.adapter, weights, delta, expert.weights)
        examples = m.num_examples
        if node is not None and examples > max(node.num_train, 1):
            self.stats.examples_capped += 1  # weight by at most the data the node registered
            examples = max(node.num_train, 1)
        update = Update(flight.node_id, node.specialty if node else flight.adapter,
                        flight.adapter, weights, base, m.base_version, staleness, examples)
        return update, delta, robust

    def _reject(self, flight: Flight, reason: str, detail: str) -> None:
        self.stats.rejected[reason] += 1
        log.warning("update from node %s (%s) rejected: %s: %s", flight.node_id,
                    flight.adapter, reason, detail)
        self.events.write(ev.Rejected(adapter=flight.adapter, reason=reason, detail=detail,
                                      node=str(flight.node_id)))

    def _late(self, flight: Flight) -> None:
        self.stats.late += 1
        log.warning("late reply from node %s (%s) dropped: its round closed at the timeout",
                    flight.node_id, flight.adapter)
        self.events.write(ev.Late(node=str(flight.node_id), adapter=flight.adapter,
                                  elapsed=round(self.clock() - self.federation.start, 3)))

    def _log(self, flight: Flight, update: Update, outcome: Outcome, m: TrainMetrics,
             server_seconds: float, bytes_in: int, robust: UpdateStats) -> None:
        expert = self._expert(flight)
        elapsed = self.clock() - self.federation.start
        result = f"-> v{expert.version:<3d}" if outcome.weights is not None else outcome.status
        eps = self.ledger.epsilon(flight.node_id) if self.ledger.enabled else None
        flying = (f", {m.in_flight_seconds:.1f}s of it while its last update travelled"
                  if m.in_flight_seconds > 0 else "")
        log.info("%6.1fs  %-14s node %-20s tau=%-2d a=%.3f %-8s loss %.3f  (%d steps, %.1fs%s)%s",
                 elapsed, expert.specialty, flight.node_id, update.staleness, outcome.mixing,
                 result, m.train_loss, m.steps, m.train_seconds, flying,
                 f"  eps {eps:.2f}" if eps is not None else "")
        round_trip = self.clock() - flight.sent_at
        # What the node did not account for: message queueing and transfer both ways.
        other = round_trip - m.process_seconds - m.load_seconds - m.train_seconds
        self.events.write(ev.Update(
            elapsed=round(elapsed, 3), specialty=update.specialty, adapter=update.adapter,
            node=str(flight.node_id), staleness=update.staleness, mixing=outcome.mixing,
            applied=outcome.weights is not None, version=expert.version,
            num_examples=m.num_examples, train_loss=m.train_loss, steps=m.steps,
            tokens=m.tokens, train_seconds=m.train_seconds, load_seconds=m.load_seconds,
            base_version=m.base_version, round_trip=round(round_trip, 3),
            process_seconds=round(m.process_seconds, 3), transfer_wait=round(other, 3),
            server_seconds=round(server_seconds, 4), bytes_out=flight.bytes_out,
            bytes_in=bytes_in, backlog=self.federation.backlog(),
            epsilon=round(eps, 4) if eps is not None else None,
            process_id=m.process_id or None,
            delta_norm=m.delta_norm if m.delta_norm >= 0 else None,
            keep=round(robust.keep, 4), cos=_round(robust.cos),
            norm_ratio=_round(robust.norm_ratio),
            in_flight_seconds=round(m.in_flight_seconds, 3)))


def with_frozen_a(weights: Weights, expert: Weights, is_delta: bool) -> Weights:
    """FFA-LoRA: a reply's ``B`` completed with the expert's frozen ``A``.

    A reply may leave ``A`` out (what a node sends) or repeat it unchanged (a
    delta of zero); any other ``A`` is refused: under FFA-LoRA it never changes.
    """
    a = a_part(expert)
    for key, value in a_part(weights).items():
        want = np.zeros_like(a[key]) if is_delta else a[key]
        if key not in a or np.shape(value) != np.shape(want) or \
                not np.array_equal(np.asarray(value, np.float32), want):
            raise UpdateRejected("a-changed", f"{key}: the frozen LoRA A of an ffa run changed")
    fill = {k: np.zeros_like(v) for k, v in a.items()} if is_delta else a
    return {**fill, **b_part(weights)}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
