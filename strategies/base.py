"""The asynchronous server loop over Flower's ``Grid`` (shared by async strategies).

Flower ships only synchronous strategies, so this loop is written directly on
``Grid.push_messages`` / ``Grid.pull_messages`` (non-blocking, partial
results).  Subclasses supply only the merge rule (:meth:`AsyncStrategy.merge`);
registration, dispatch, validation, error handling, checkpointing, evaluation
and the stop conditions live here once.

Staleness unit: expert versions.  A node that trained on version ``v`` of its
expert while the expert moved on to ``V`` sends an update with
``tau = V - v``.
"""

from __future__ import annotations

import logging
import time
import zlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedmoe_flwr import contract as C
from fedmoe_flwr.aggregation import Weights
from fedmoe_flwr.artifacts import RunDirectory
from fedmoe_flwr.codec import from_array_record, to_array_record, weights_nbytes
from fedmoe_flwr.config import AppConfig
from fedmoe_flwr.experts import ExpertState, GatewayState
from fedmoe_flwr.gateway import build_gateway, gateway_coefficients, gateway_seed
from fedmoe_flwr.model import lora_signature
from fedmoe_flwr.plot import plot_progress
from fedmoe_flwr.report import eval_table, summary_table
from fedmoe_flwr.resume import ResumeState
from fedmoe_flwr.validation import UpdateRejected, validate_update

log = logging.getLogger("fedmoe.server")

NODE_RECHECK_S = 5.0  # how often grid.get_node_ids() is re-read for joiners
REJOIN_BACKOFF_S = 30.0  # a node that sent an error reply is re-queried after this


@dataclass
class NodeInfo:
    """A registered node, from its query reply."""

    node_id: int
    specialty: str
    num_train: int
    num_eval: int
    device: str
    fingerprint: str


@dataclass
class Flight:
    """A message pushed and not yet answered."""

    node_id: int
    kind: str  # "query" | "train" | "evaluate"
    sent_at: float
    specialty: str = ""
    base_version: int = 0
    tag: str = ""
    base_weights: Weights | None = None  # what a train message sent (for delta-based rules)


@dataclass
class MergeResult:
    """What a strategy did with one update; ``weights`` is None when buffered."""

    weights: Weights | None
    mixing: float


@dataclass
class RunStats:
    """Counters of the whole run, for the summary and the benchmark."""

    updates: int = 0
    rejected: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    discarded: int = 0  # updates that arrived after run.max-updates was reached
    late: int = 0  # synchronous rounds: replies that arrived after their round closed
    bytes_sent: int = 0
    bytes_received: int = 0


class AsyncStrategy(ABC):
    """Base of the asynchronous strategies: the loop of DESIGN.md, merge rule abstract.

    Parameters
    ----------
    cfg : AppConfig
        The parsed run config.
    run_dir : RunDirectory
        Where checkpoints and events go.
    clock, sleep : callables
        Injected so tests drive the loop without waiting in real time.
    poll_interval : float
        Seconds between pulls when nothing arrived.
    """

    name = "base"

    def __init__(self, *, cfg: AppConfig, run_dir: RunDirectory,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 poll_interval: float = 0.2, resume: ResumeState | None = None) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.clock = clock
        self.sleep = sleep
        self.poll_interval = poll_interval
        self.known = frozenset(cfg.run.specialties)
        self.experts: dict[str, ExpertState] = {}
        self.gateway: GatewayState | None = None
        self.nodes: dict[int, NodeInfo] = {}
        self.refused: dict[int, str] = {}  # node id -> reason (never re-queried)
        self.lost_at: dict[int, float] = {}  # node id -> time of its error reply
        self.flights: dict[str, Flight] = {}
        self.centroids: dict[int, tuple[str, np.ndarray, int]] = {}  # node -> (spec, mean, n)
        self.eval_matrix: dict[str, dict[str, float]] = {}  # domain -> adapter -> loss
        self.initial_eval: dict[str, dict[str, float]] = {}
        self.stats = RunStats()
        self.start = 0.0
        self.stopping = False
        self._registering = True
        self._gateway_first_version = 0
        self._updates_at_start = 0
        if resume is not None:
            self._resume(resume)

    def _resume(self, state: ResumeState) -> None:
        """Continue an old run: experts, versions, gateway version and counters."""
        self.experts = dict(state.experts)
        for expert in self.experts.values():
            self._checkpoint_expert(expert)
        self._gateway_first_version = state.gateway_version + 1
        self.stats.updates = self._updates_at_start = state.updates
        if state.router is not None:
            self.run_dir.write_json(C.ROUTER_FILE, state.router)
        log.info("resuming from %s: %s; %d updates so far", state.source,
                 ", ".join(f"{s} v{e.version}" for s, e in sorted(self.experts.items())),
                 state.updates)
        self.run_dir.log_event("resume", source=str(state.source),
                               versions={s: e.version for s, e in self.experts.items()})

    # ------------------------------------------------------------------ merge rule
    @abstractmethod
    def merge(self, expert: ExpertState, update: Weights, base: Weights, staleness: int,
              num_examples: int) -> MergeResult:
        """Combine one validated update into the expert; return the new weights.

        ``base`` is the adapter the node started from, so ``update - base`` is
        its delta; arrays are never mutated, so keeping a reference is free.
        """

    def on_tick(self, grid: Grid) -> None:
        """Called once per loop iteration (synchronous strategies check deadlines here)."""
        return None

    def accepts_staleness(self, staleness: int) -> bool:
        """Updates staler than ``strategy.max-staleness`` versions are dropped."""
        return staleness <= self.cfg.strategy.max_staleness

    # ------------------------------------------------------------------ messaging
    def _push(self, grid: Grid, messages: list[tuple[Message, Flight]]) -> None:
        if not messages:
            return
        ids = list(grid.push_messages([m for m, _ in messages]))
        for msg_id, (msg, flight) in zip(ids, messages, strict=True):
            if msg_id:
                self.flights[msg_id] = flight
                for rec in msg.content.array_records.values():
                    self.stats.bytes_sent += rec.count_bytes()

    def _message(self, content: RecordDict, node_id: int, kind: str) -> Message:
        return Message(content, dst_node_id=node_id, message_type=kind,
                       ttl=self.cfg.run.message_ttl)

    def _query(self, grid: Grid, node_ids: Iterable[int]) -> None:
        busy = {f.node_id for f in self.flights.values()}
        now = self.clock()
        todo = [n for n in node_ids if n not in self.nodes and n not in self.refused
                and n not in busy and now - self.lost_at.get(n, -1e18) >= REJOIN_BACKOFF_S]
        self._push(grid, [(self._message(RecordDict({C.CONFIG: ConfigRecord({})}), n, "query"),
                           Flight(n, "query", now)) for n in todo])

    def _train_message(self, node: NodeInfo) -> tuple[Message, Flight]:
        expert = self.experts[node.specialty]
        t = self.cfg.train
        seed = zlib.crc32(f"{self.cfg.run.seed}:{node.node_id}:{expert.version}".encode())
        content = RecordDict({
            C.ADAPTER: to_array_record(expert.weights),
            C.CONFIG: ConfigRecord({
                C.SPECIALTY: node.specialty, C.VERSION: expert.version,
                C.TIME_BUDGET: t.sync_interval, C.MAX_STEPS: t.max_steps,
                C.LEARNING_RATE: t.learning_rate, C.SEED: seed,
            }),
        })
        return (self._message(content, node.node_id, "train"),
                Flight(node.node_id, "train", self.clock(), node.specialty, expert.version,
                       base_weights=expert.weights))

    def dispatch(self, grid: Grid, nodes: Iterable[NodeInfo]) -> None:
        """Send each node its specialty's newest adapter (unless stopping or capped)."""
        if not self.stopping and not self._cap_reached():
            self._push(grid, [self._train_message(n) for n in nodes])

    # ------------------------------------------------------------------ registration
    def _register(self, reply: Message, flight: Flight) -> NodeInfo | None:
        info = reply.content[C.INFO]
        node_id = flight.node_id
        specialty = str(info[C.SPECIALTY])
        expected = lora_signature(self.cfg.model)
        got = {"r": info[C.LORA_R], "alpha": info[C.LORA_ALPHA],
               "target_modules": info[C.LORA_TARGETS]}
        fingerprints = {n.fingerprint for n in self.nodes.values()}
        reason = None
        if specialty not in self.known:
            reason = f"unknown specialty {specialty!r}; this run trains {sorted(self.known)}"
        elif got != expected:
            reason = f"LoRA signature {got} differs from the server's {expected}"
        elif fingerprints and info[C.MODEL_FINGERPRINT] not in fingerprints:
            reason = (f"base model fingerprint {info[C.MODEL_FINGERPRINT]} differs from "
                      f"{sorted(fingerprints)}")
        if reason:
            self.refused[node_id] = reason
            log.warning("node %s refused: %s", node_id, reason)
            self.run_dir.log_event("refused", node=str(node_id), reason=reason)
            return None
        node = NodeInfo(node_id, specialty, int(info[C.NUM_TRAIN]), int(info[C.NUM_EVAL]),
                        str(info[C.DEVICE]), str(info[C.MODEL_FINGERPRINT]))
        if specialty not in self.experts:
            if C.ADAPTER not in reply.content.array_records:
                self.refused[node_id] = "registration without an initial adapter"
                return None
            init = from_array_record(reply.content.array_records[C.ADAPTER])
            self.experts[specialty] = ExpertState(specialty, init)
            self._checkpoint_expert(self.experts[specialty])
            if self.gateway is not None:  # a late specialty joins the gateway too
                self.refresh_gateway()
        self.nodes[node_id] = node
        self.lost_at.pop(node_id, None)
        if C.CENTROID in reply.content.array_records:
            self._add_centroid(node, reply.content.array_records[C.CENTROID],
                               int(info.get(C.CENTROID_COUNT, 1)))
        log.info("node %s registered: %s, %d train / %d eval examples, %s", node_id,
                 specialty, node.num_train, node.num_eval, node.device)
        self.run_dir.log_event("register", node=str(node_id), specialty=specialty,
                               num_train=node.num_train, device=node.device)
        return node

    def _add_centroid(self, node: NodeInfo, record: Any, count: int) -> None:
        """Keep the node's mean prompt embedding; write the per-specialty centroids."""
        vec = from_array_record(record).get("mean")
        dims = {v.shape for _, v, _ in self.centroids.values()}
        if vec is None or vec.ndim != 1 or not np.isfinite(vec).all() or count < 1 or \
                (dims and vec.shape not in dims):
            log.warning("node %s sent an unusable centroid (shape %s); the centroid router "
                        "will not use it", node.node_id, getattr(vec, "shape", None))
            return
        self.centroids[node.node_id] = (node.specialty, vec.astype(np.float32), count)
        per: dict[str, dict[str, Any]] = {}
        for specialty, v, n in self.centroids.values():
            entry = per.setdefault(specialty, {"sum": np.zeros_like(v), "examples": 0,
                                               "nodes": 0})
            entry["sum"] = entry["sum"] + n * v
            entry["examples"] += n
            entry["nodes"] += 1
        self.run_dir.write_json(C.ROUTER_FILE, {
            "embedding": f"base model hidden_states[{self.cfg.router.embedding_layer}], "
                         "mean-pooled over the chat-templated prompt, L2-normalised; centroid = "
                         "example-weighted mean over nodes",
            "embedding_layer": self.cfg.router.embedding_layer,
            "specialties": {s: {"centroid": (e["sum"] / e["examples"]).tolist(),
                                "examples": e["examples"], "nodes": e["nodes"]}
                            for s, e in sorted(per.items())},
        })

    # ------------------------------------------------------------------ updates
    def _handle_train(self, grid: Grid, reply: Message, flight: Flight) -> None:
        node = self.nodes.get(flight.node_id)
        expert = self.experts.get(flight.specialty)
        if self._cap_reached():
            self.stats.discarded += 1  # max-updates is a hard cap: later arrivals are dropped
            return
        try:
            if expert is None:
                raise UpdateRejected("unknown-specialty", f"{flight.specialty!r}")
            if C.ADAPTER not in reply.content.array_records or C.METRICS not in \
                    reply.content.metric_records:
                raise UpdateRejected("malformed", "reply lacks the adapter or metrics record")
            metrics = reply.content.metric_records[C.METRICS]
            missing = [k for k in C.TRAIN_METRIC_KEYS if k not in metrics]
            if missing:
                raise UpdateRejected("malformed", f"metrics lack {missing}")
            update = from_array_record(reply.content.array_records[C.ADAPTER])
            self.stats.bytes_received += weights_nbytes(update)
            base_version = int(metrics[C.BASE_VERSION])
            validate_update(expert.weights, update, specialty=flight.specialty,
                            known_specialties=self.known, base_version=base_version,
                            current_version=expert.version)
            if base_version != flight.base_version:
                raise UpdateRejected("bad-version", f"reply says base version {base_version}, "
                                     f"the server sent {flight.base_version}")
            loss = float(metrics[C.TRAIN_LOSS])
            if loss != loss or loss in (float("inf"), float("-inf")):
                raise UpdateRejected("non-finite", f"train loss {loss}")
            staleness = expert.version - base_version
            if not self.accepts_staleness(staleness):
                raise UpdateRejected("too-stale", f"staleness {staleness} > max "
                                     f"{self.cfg.strategy.max_staleness}")
            base = flight.base_weights if flight.base_weights is not None else expert.weights
            result = self.merge(expert, update, base,
                                staleness, int(metrics[C.NUM_EXAMPLES]))
        except UpdateRejected as err:
            self.stats.rejected[err.reason] += 1
            log.warning("update from node %s (%s) rejected: %s", flight.node_id,
                        flight.specialty, err)
            self.run_dir.log_event("rejected", node=str(flight.node_id),
                                   specialty=flight.specialty, reason=err.reason,
                                   detail=err.detail)
        else:
            expert.examples_seen += int(metrics[C.NUM_EXAMPLES])
            expert.nodes.add(flight.node_id)
            expert.last_train_loss = loss
            if result.weights is not None:
                self._apply(expert, result.weights)
            self.stats.updates += 1
            self._log_update(flight, expert, staleness, result, metrics)
        if node is not None:
            self.dispatch(grid, [node])

    def _apply(self, expert: ExpertState, weights: Weights) -> None:
        expert.weights = weights
        expert.version += 1
        expert.updates += 1
        self._checkpoint_expert(expert)
        self.run_dir.log_event("version", specialty=expert.specialty, version=expert.version,
                               elapsed=round(self.clock() - self.start, 3))
        self.refresh_gateway()

    def _log_update(self, flight: Flight, expert: ExpertState, staleness: int,
                    result: MergeResult, metrics: Any) -> None:
        elapsed = self.clock() - self.start
        outcome = f"-> v{expert.version:<3d}" if result.weights is not None else "buffered"
        log.info("%6.1fs  %-14s node %-20s tau=%-2d a=%.3f %-8s loss %.3f  (%d steps, "
                 "%.1fs)", elapsed, expert.specialty, flight.node_id, staleness,
                 result.mixing, outcome, float(metrics[C.TRAIN_LOSS]),
                 int(metrics[C.STEPS]), float(metrics[C.TRAIN_SECONDS]))
        round_trip = self.clock() - flight.sent_at
        process = float(metrics.get(C.PROCESS_SECONDS, 0.0))
        # What the node did not account for: message queueing and transfer both ways.
        other = round_trip - process - float(metrics[C.LOAD_SECONDS]) - \
            float(metrics[C.TRAIN_SECONDS])
        self.run_dir.log_event(
            "update", elapsed=round(elapsed, 3), specialty=expert.specialty,
            node=str(flight.node_id), staleness=staleness, mixing=result.mixing,
            applied=result.weights is not None, version=expert.version,
            round_trip=round(round_trip, 3), **{C.PROCESS_SECONDS: round(process, 3)},
            transfer_wait=round(other, 3),
            **{k: float(metrics[k]) for k in C.TRAIN_METRIC_KEYS})

    # ------------------------------------------------------------------ gateway + checkpoints
    def refresh_gateway(self) -> None:
        """Rebuild the gateway from the current experts and checkpoint it."""
        g = self.cfg.gateway
        coeffs = gateway_coefficients({s: e.examples_seen for s, e in self.experts.items()},
                                      g.weighting)
        version = self.gateway.version + 1 if self.gateway else self._gateway_first_version
        m = self.cfg.model
        merged = build_gateway({s: e.weights for s, e in self.experts.items()}, coeffs,
                               g.method, rank=m.lora_r, alpha=m.lora_alpha, svd_rank=g.rank,
                               density=g.density, seed=gateway_seed(self.cfg.run.seed, version))
        self.gateway = GatewayState(merged.weights, g.method, version, coeffs,
                                    {s: e.version for s, e in self.experts.items()},
                                    self.gateway.eval_losses if self.gateway else {},
                                    merged.rank, merged.alpha)
        self._checkpoint_gateway()

    def _checkpoint_gateway(self) -> None:
        gw = self.gateway
        assert gw is not None
        self.run_dir.save_adapter("gateway", gw.weights, gw.version, gw.meta(), gw.rank, gw.alpha)

    def _checkpoint_expert(self, expert: ExpertState) -> None:
        self.run_dir.save_adapter(f"experts/{expert.specialty}", expert.weights,
                                  expert.version, expert.meta())

    # ------------------------------------------------------------------ evaluation
    def _adapters(self) -> dict[str, Weights]:
        adapters = {s: e.weights for s, e in self.experts.items()}
        if self.gateway is not None:
            adapters[C.GATEWAY] = self.gateway.weights
        return adapters

    def push_evaluation(self, grid: Grid, tag: str) -> set[str]:
        """Ask one node per domain for the held-out loss of every adapter."""
        content_records = {f"{C.EVAL_PREFIX}{name}": to_array_record(w)
                           for name, w in self._adapters().items()}
        shapes: dict[str, Any] = {}
        if self.gateway is not None:
            shapes = {C.EVAL_RANK_PREFIX + C.GATEWAY: self.gateway.rank,
                      C.EVAL_ALPHA_PREFIX + C.GATEWAY: self.gateway.alpha}
        evaluators: dict[str, NodeInfo] = {}
        for node in self.nodes.values():
            evaluators.setdefault(node.specialty, node)
        msgs = []
        for domain, node in sorted(evaluators.items()):
            content = RecordDict({**content_records,
                                  C.CONFIG: ConfigRecord({C.SPECIALTY: domain, **shapes})})
            msgs.append((self._message(content, node.node_id, "evaluate"),
                         Flight(node.node_id, "evaluate", self.clock(), domain, tag=tag)))
        before = set(self.flights)
        self._push(grid, msgs)
        return set(self.flights) - before

    def _handle_eval(self, reply: Message, flight: Flight) -> None:
        losses = reply.content.metric_records.get(C.EVAL_LOSSES)
        if losses is None:
            self.stats.rejected["malformed-eval"] += 1
            return
        row = {name: float(v) for name, v in losses.items()}
        self.eval_matrix[flight.specialty] = row
        if flight.tag == "initial":
            self.initial_eval[flight.specialty] = row
        for name, loss in row.items():
            target = self.gateway if name == C.GATEWAY else self.experts.get(name)
            if target is not None:
                target.eval_losses[flight.specialty] = loss
        elapsed = 0.0 if flight.tag == "initial" else self.clock() - self.start
        self.run_dir.log_event("eval", tag=flight.tag, domain=flight.specialty,
                               elapsed=round(elapsed, 3), losses=row)

    def evaluate_blocking(self, grid: Grid, tag: str, timeout: float) -> None:
        """Run one evaluation round and wait for it (start and end of the run)."""
        pending = self.push_evaluation(grid, tag)
        deadline = self.clock() + timeout
        while pending & set(self.flights) and self.clock() < deadline:
            self.poll(grid)
        missing = pending & set(self.flights)
        for msg_id in missing:
            log.warning("evaluation by node %s timed out", self.flights.pop(msg_id).node_id)

    # ------------------------------------------------------------------ the loop
    def poll(self, grid: Grid) -> int:
        """Pull every available reply and handle it; returns how many arrived."""
        if not self.flights:
            self.sleep(self.poll_interval)
            return 0
        replies = list(grid.pull_messages(list(self.flights)))
        for reply in replies:
            flight = self.flights.pop(reply.metadata.reply_to_message_id, None)
            if flight is None:
                continue
            if reply.has_error():
                self._handle_error(reply, flight)
            elif flight.kind == "query":
                node = self._register(reply, flight)
                if node is not None and self.experts and not self._registering:
                    self.dispatch(grid, [node])
            elif flight.kind == "train":
                self._handle_train(grid, reply, flight)
            elif flight.kind == "evaluate":
                self._handle_eval(reply, flight)
        if not replies:
            self.sleep(self.poll_interval)
        return len(replies)

    def _handle_error(self, reply: Message, flight: Flight) -> None:
        err = reply.error
        self.stats.errors[int(err.code)] += 1
        log.warning("node %s: error reply to %s (code %s): %s; dropping it until it rejoins",
                    flight.node_id, flight.kind, err.code, err.reason)
        self.run_dir.log_event("error", node=str(flight.node_id), kind=flight.kind,
                               code=int(err.code), reason=str(err.reason))
        self.nodes.pop(flight.node_id, None)
        self.lost_at[flight.node_id] = self.clock()
        for msg_id in [m for m, f in self.flights.items() if f.node_id == flight.node_id]:
            del self.flights[msg_id]

    def _cap_reached(self) -> bool:
        cap = self.cfg.run.max_updates  # counts this run's updates (not a resumed run's)
        return bool(cap and self.stats.updates - self._updates_at_start >= cap)

    def _done(self) -> bool:
        return self.clock() - self.start >= self.cfg.run.duration or self._cap_reached()

    def run(self, grid: Grid) -> dict[str, Any]:
        """Register nodes, train until a stop condition, evaluate, and summarise."""
        self._registering = True
        t0 = self.clock()
        last_check = -1e18
        while self.clock() - t0 < self.cfg.run.register_timeout:
            if self.clock() - last_check >= NODE_RECHECK_S or not self.flights:
                self._query(grid, grid.get_node_ids())
                last_check = self.clock()
            self.poll(grid)
            if {n.specialty for n in self.nodes.values()} == set(self.known):
                break
        if not self.nodes:
            raise RuntimeError(
                f"no node registered within {self.cfg.run.register_timeout:.0f}s "
                f"(run.register-timeout); refused: {self.refused or 'none'}")
        missing = sorted(self.known - {n.specialty for n in self.nodes.values()})
        if missing:
            log.warning("no node for %s yet; training the others and waiting for them", missing)
        self.refresh_gateway()
        self._registering = False
        self.evaluate_blocking(grid, "initial", self.cfg.run.message_ttl)
        self.start = self.clock()
        self.run_dir.log_event("start", strategy=self.name, nodes=len(self.nodes))
        log.info("training %d expert(s) on %d node(s) with %s for %.0fs", len(self.experts),
                 len(self.nodes), self.name, self.cfg.run.duration)
        self.dispatch(grid, list(self.nodes.values()))
        last_check = last_eval = self.clock()
        while not self._done():
            if self.clock() - last_check >= NODE_RECHECK_S:
                self._query(grid, grid.get_node_ids())
                last_check = self.clock()
            every = self.cfg.run.eval_every
            if every and self.clock() - last_eval >= every:
                self.push_evaluation(grid, "periodic")
                last_eval = self.clock()
            self.poll(grid)
            self.on_tick(grid)
        self.stopping = True
        self._drain(grid)
        self.evaluate_blocking(grid, "final", self.cfg.run.message_ttl)
        return self.finish()

    def _drain(self, grid: Grid) -> None:
        """Stop dispatching; merge the updates still in flight for a grace period."""
        deadline = self.clock() + self.cfg.run.drain_timeout
        while any(f.kind == "train" for f in self.flights.values()) and self.clock() < deadline:
            self.poll(grid)
            self.on_tick(grid)
        dropped = [m for m, f in self.flights.items() if f.kind == "train"]
        for msg_id in dropped:
            del self.flights[msg_id]
        if dropped:
            log.info("stopped waiting for %d in-flight update(s)", len(dropped))

    def finish(self) -> dict[str, Any]:
        """Final checkpoints, ``summary.json`` and the tables a person reads."""
        for expert in self.experts.values():
            self._checkpoint_expert(expert)
        if self.gateway is not None:
            self._checkpoint_gateway()
        summary = {
            "strategy": self.name,
            "duration_s": round(self.clock() - self.start, 3),
            "updates": self.stats.updates,
            "discarded_after_cap": self.stats.discarded,
            "late_dropped": self.stats.late,
            "rejected": dict(self.stats.rejected),
            "errors": {str(k): v for k, v in self.stats.errors.items()},
            "bytes_sent": self.stats.bytes_sent,
            "bytes_received": self.stats.bytes_received,
            "experts": {s: e.meta() for s, e in sorted(self.experts.items())},
            "gateway": self.gateway.meta() if self.gateway else None,
            "eval": {"initial": self.initial_eval, "final": self.eval_matrix},
            "nodes": {str(n.node_id): n.specialty for n in self.nodes.values()},
        }
        self.run_dir.write_json("summary.json", summary)
        self.run_dir.log_event("end", updates=self.stats.updates)
        try:
            plot_progress(self.run_dir.root / "metrics.jsonl", self.run_dir.root / "progress.png")
        except Exception as err:  # a plot must never fail a finished run
            log.warning("could not draw progress.png: %s", err)
        log.info("\n%s", summary_table(summary))
        log.info("\n%s", eval_table(self.initial_eval, self.eval_matrix))
        return summary
