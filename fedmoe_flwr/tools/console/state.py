"""What the console shows, folded from the run's events one at a time.

The fold keeps per-node and per-expert counters and the chart series; the
page asks for a view *since* the last event it saw and gets the small tables
in full and only the chart points it lacks.  Times on the charts are
``elapsed`` seconds of training (negative before training starts: the
registration and the initial evaluation).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from fedmoe_flwr import events as ev
from fedmoe_flwr.tools.console.series import SeriesSet

RATE_WINDOW_S = 60.0  # updates per minute: counted over the last minute
RECENT_REJECTED = 100  # rejected updates kept with their reason and detail
QUARANTINE = "quarantined:"  # a Refused reason with this prefix: the robust checks' quarantine


@dataclass
class NodeView:
    """One node as the events tell it: where it trains, how often, and whether it is gone."""

    node: str
    specialty: str = ""
    adapter: str = ""
    device: str = ""
    num_train: int = 0
    status: str = "registered"  # registered | lost | refused | quarantined
    reason: str = ""
    last_update: float | None = None  # wall clock of its last accepted update
    updates: int = 0
    staleness: int | None = None  # of its last update, in versions
    staleness_sum: int = 0
    epsilon: float | None = None  # privacy on: spent so far
    train_loss: float | None = None
    times: deque = field(default_factory=lambda: deque(maxlen=1000))  # recent update times

    def row(self, now: float) -> dict[str, Any]:
        """The node's table row; ``now`` ends the updates-per-minute window."""
        per_minute = sum(1 for t in self.times if now - RATE_WINDOW_S < t <= now)
        return {"node": self.node, "specialty": self.specialty, "adapter": self.adapter,
                "device": self.device, "num_train": self.num_train, "status": self.status,
                "reason": self.reason, "last_update": self.last_update,
                "updates": self.updates, "per_minute": per_minute,
                "staleness": self.staleness,
                "mean_staleness": (round(self.staleness_sum / self.updates, 2)
                                   if self.updates else None),
                "epsilon": self.epsilon, "train_loss": self.train_loss}


@dataclass
class ExpertView:
    """One adapter's counters from the events (its checkpoint's meta.json adds the rest)."""

    name: str
    version: int = 0
    updates: int = 0
    by_node: Counter = field(default_factory=Counter)
    train_loss: float | None = None
    held_out: float | None = None  # on its own domain, at the last evaluation

    def row(self) -> dict[str, Any]:
        """The expert's part of the view."""
        return {"name": self.name, "version": self.version, "updates": self.updates,
                "by_node": dict(self.by_node.most_common()), "train_loss": self.train_loss,
                "held_out": self.held_out}


class RunState:
    """The fold of one run's events (a new run, or a rewritten file, starts a new one)."""

    def __init__(self) -> None:
        self.seq = -1  # sequence number of the last event folded
        self.info: dict[str, Any] = {"strategy": "", "nodes": 0, "started": None,
                                     "ended": None, "resumed_from": None, "updates": 0,
                                     "late": 0, "errors": 0, "bytes_in": 0, "bytes_out": 0,
                                     "elapsed": 0.0, "last_event": None}
        self.nodes: dict[str, NodeView] = {}
        self.experts: dict[str, ExpertView] = {}
        self.series = SeriesSet()
        self.rejected: deque = deque(maxlen=RECENT_REJECTED)
        self.rejected_by: Counter = Counter()
        self.load: dict[str, Any] | None = None
        self.evals: dict[str, dict[str, Any]] = {}  # domain -> its last evaluation

    def fold(self, event: ev.Event) -> None:
        """Take one event into the counters and series."""
        self.seq += 1
        self.info["last_event"] = event.time
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def elapsed_of(self, event: ev.Event) -> float:
        """An event's training time: its own ``elapsed``, else from the wall clock."""
        elapsed = getattr(event, "elapsed", None)
        if elapsed is not None:
            return float(elapsed)
        start = self.info["started"]
        return round(event.time - start, 3) if start is not None else 0.0

    def node(self, name: str) -> NodeView:
        """The node's view, created on its first mention (a resumed or late node)."""
        return self.nodes.setdefault(name, NodeView(name))

    def expert(self, name: str) -> ExpertView:
        """The adapter's view, created on its first mention."""
        return self.experts.setdefault(name, ExpertView(name))

    def rejected_view(self) -> dict[str, Any]:
        """Counts by reason and the most recent refusals, newest first."""
        return {"by_reason": dict(self.rejected_by.most_common()),
                "recent": list(reversed(self.rejected))}


def _on_start(state: RunState, e: ev.Start) -> None:
    state.info.update(strategy=e.strategy, nodes=e.nodes, started=e.time)


def _on_resume(state: RunState, e: ev.Resume) -> None:
    state.info["resumed_from"] = e.source
    for name, version in e.versions.items():
        state.expert(name).version = int(version)


def _on_register(state: RunState, e: ev.Register) -> None:
    node = state.node(e.node)
    node.specialty, node.adapter, node.device, node.num_train = (e.specialty, e.adapter,
                                                                 e.device, e.num_train)
    node.status, node.reason = "registered", ""
    state.expert(e.adapter)


def _on_refused(state: RunState, e: ev.Refused) -> None:
    node = state.node(e.node)
    node.status = "quarantined" if e.reason.startswith(QUARANTINE) else "refused"
    node.reason = e.reason


def _on_error(state: RunState, e: ev.NodeError) -> None:
    node = state.node(e.node)
    state.info["errors"] += 1
    if node.status not in ("refused", "quarantined"):
        node.status = "lost"
        node.reason = f"{e.message_kind}: {e.reason} (code {e.code})"


def _on_update(state: RunState, e: ev.Update) -> None:
    node = state.node(e.node)
    node.adapter = node.adapter or e.adapter
    node.specialty = node.specialty or e.specialty
    if node.status == "lost":
        node.status, node.reason = "registered", ""  # it came back
    node.updates += 1
    node.last_update, node.staleness, node.train_loss = e.time, e.staleness, e.train_loss
    node.staleness_sum += e.staleness
    node.times.append(e.time)
    if e.epsilon is not None:
        node.epsilon = e.epsilon
    expert = state.expert(e.adapter)
    expert.version = max(expert.version, e.version)
    expert.updates += 1
    expert.by_node[e.node] += 1
    expert.train_loss = e.train_loss
    info = state.info
    info["updates"] += 1
    info["bytes_in"] += e.bytes_in
    info["bytes_out"] += e.bytes_out
    info["elapsed"] = max(info["elapsed"], e.elapsed)
    state.series.add(f"train_loss|{e.adapter}", state.seq, [e.elapsed, e.train_loss])
    state.series.add("bytes", state.seq, [e.elapsed, e.bytes_in, e.bytes_out])


def _on_version(state: RunState, e: ev.Version) -> None:
    expert = state.expert(e.adapter)
    expert.version = max(expert.version, e.version)
    state.info["elapsed"] = max(state.info["elapsed"], e.elapsed)
    state.series.add(f"version|{e.adapter}", state.seq, [e.elapsed, e.version])


def _on_eval(state: RunState, e: ev.Eval) -> None:
    state.evals[e.domain] = {"tag": e.tag, "elapsed": e.elapsed, "losses": dict(e.losses)}
    for adapter, loss in e.losses.items():
        state.series.add(f"held_out|{adapter}|{e.domain}", state.seq, [e.elapsed, loss])
    if e.domain in e.losses:
        state.expert(e.domain).held_out = e.losses[e.domain]


def _on_rejected(state: RunState, e: ev.Rejected) -> None:
    state.rejected_by[e.reason] += 1
    state.rejected.append({"time": e.time, "elapsed": state.elapsed_of(e), "adapter": e.adapter,
                           "node": e.node, "reason": e.reason, "detail": e.detail})


def _on_load(state: RunState, e: ev.Load) -> None:
    rate = e.replies / e.window if e.window > 0 else 0.0
    state.load = {"elapsed": e.elapsed, "window": e.window, "replies": e.replies,
                  "pulls": e.pulls, "max_batch": e.max_batch, "busy": e.busy,
                  "background": e.background, "in_flight": e.in_flight,
                  "line": (f"{e.elapsed:.1f}s  server: {e.replies} replies in {e.window:.0f}s, "
                           f"busy {100 * e.busy:.0f}%, at most {e.max_batch} per pull, "
                           f"{e.in_flight} in flight, {e.background} background job(s) queued")}
    state.series.add("load", state.seq, [e.elapsed, round(rate, 4), e.busy, e.in_flight,
                                         e.background])


def _on_late(state: RunState, e: ev.Late) -> None:
    state.info["late"] += 1


def _on_end(state: RunState, e: ev.End) -> None:
    state.info["ended"] = e.time


def _on_new_expert(state: RunState, e: ev.NewExpert) -> None:
    state.expert(e.specialty)


_HANDLERS: dict[type, Any] = {
    ev.Start: _on_start, ev.Resume: _on_resume, ev.Register: _on_register,
    ev.Refused: _on_refused, ev.NodeError: _on_error, ev.Update: _on_update,
    ev.Version: _on_version, ev.Eval: _on_eval, ev.Rejected: _on_rejected, ev.Load: _on_load,
    ev.Late: _on_late, ev.End: _on_end, ev.NewExpert: _on_new_expert}
