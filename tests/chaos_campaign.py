"""The chaos campaign: one federation through node crashes, worker kills, a SuperLink restart
and a ServerApp kill, with a red-team node among the honest ones.

Shared by ``tests/test_e2e_chaos.py`` (one burst of faults, short runs) and
``bench/chaos.py`` (several bursts over minutes).  The campaign is three runs
of one federation, each resumed from the last one's run directory:

1. ``c1`` until every honest node has sent an accepted update and the
   red-team node is quarantined; then the node-fault bursts (each a few
   SuperNode crashes and worker kills at once, every one awaited until the
   node's next accepted update); then the SuperLink is killed and started
   again on its state database.  In Flower 1.41 that ends the run: its
   ServerApp exits with its SuperLink (``--parent-pid``).
2. ``c2``: ``run.resume-from`` c1, until a few accepted updates; then its
   ServerApp is killed.
3. ``c3``: ``run.resume-from`` c2, for ``tail_seconds``, ending normally
   (drain, final evaluation, ``summary.json``).

The figures are computed afterwards by :mod:`tests.chaos_figures`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from tests.chaos_fleet import Fault, Fleet, NodeSpec

HONEST = (NodeSpec("py1", "python_expert", "data/python.jsonl"),
          NodeSpec("py2", "python_expert", "data/python.jsonl"),
          NodeSpec("sql", "sql_expert", "data/sql.jsonl"),
          NodeSpec("docs", "docs_expert", "data/docs.jsonl"))
RED_TEAM = NodeSpec("evil", "python_expert", "data/python.jsonl", red_team="cycle")
RUNS = ("c1", "c2", "c3")
NODE_FAULTS = ("node-crash", "worker-kill")
RESTART_AFTER_S = 75.0  # a crashed node is started again at its error reply, or after this
STUCK_AFTER_S = 150.0  # a node started again with no accepted update after this: restarted


@dataclass(frozen=True)
class Plan:
    """What the campaign does; the defaults are the test's (one burst, short runs)."""

    bursts: tuple[tuple[str, ...], ...] = (("node-crash", "worker-kill"),)
    spread_seconds: float = 0.0  # bursts start evenly over this long (the benchmark's)
    resumed_updates: int = 4  # accepted updates of c2 before its ServerApp is killed
    tail_seconds: float = 20.0  # c3's run.duration
    overrides: str = "train.sync-interval=3 run.rejoin-backoff=5"
    seed: int = 0
    recover_timeout: float = 480.0  # per fault: to its next accepted update
    nodes: tuple[NodeSpec, ...] = (*HONEST, RED_TEAM)


@dataclass
class Outcome:
    """What happened: the faults (with their recovery) and each run's submit exit status."""

    faults: list[Fault] = field(default_factory=list)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    recovered: dict[int, float] = field(default_factory=dict)  # fault index -> update time
    superlink_ended_run: bool | None = None  # c1's ServerApp gone after the restart


def accepted(events: list[dict], node: str | None = None, after: float = 0.0) -> list[dict]:
    """Update events that were merged (``applied``), of one node if given, after a time."""
    return [e for e in events if e["event"] == "update" and e.get("applied")
            and e["time"] > after and (node is None or e["node"] == node)]


def quarantined(events: list[dict], node: str | None) -> bool:
    """Whether ``node`` was refused with a reason starting with ``quarantined``."""
    return any(e["event"] == "refused" and e["node"] == node
               and e["reason"].startswith("quarantined") for e in events)


class Campaign:
    """Runs one :class:`Plan` on a :class:`Fleet` and records the :class:`Outcome`."""

    def __init__(self, fleet: Fleet, plan: Plan) -> None:
        self.fleet = fleet
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.outcome = Outcome(faults=fleet.faults)
        self.procs: dict = {}
        self.honest = [n.name for n in plan.nodes if not n.red_team]
        self.red = [n.name for n in plan.nodes if n.red_team]

    def run(self) -> Outcome:
        """The three runs and their faults; processes are left for the caller's stop_all."""
        f, p = self.fleet, self.plan
        self._submit("c1", "run.duration=3600")
        f.wait_for("c1", self._settled, 900, "an accepted update of every honest node and "
                   "the red-team node's quarantine")
        t0 = time.monotonic()
        for i, burst in enumerate(p.bursts):
            time.sleep(max(0.0, t0 + i * p.spread_seconds / len(p.bursts) - time.monotonic()))
            self._burst(burst)
        link = f.restart_superlink("c1")
        self._end("c1", 120)
        self.outcome.superlink_ended_run = not f.serverapps()
        self._revive_dead()
        self._submit("c2", f"run.duration=3600 run.resume-from='{f.out / 'c1'}'")
        self._recovered(link, "c2", None)
        f.wait_for("c2", lambda ev: len(accepted(ev)) >= p.resumed_updates, 600,
                   f"{p.resumed_updates} accepted updates of the resumed run c2")
        app = f.kill_serverapp("c2")
        self._end("c2", 60)
        self._submit("c3", f"run.duration={p.tail_seconds} run.resume-from='{f.out / 'c2'}'")
        self._recovered(app, "c3", None)
        self.outcome.exit_codes["c3"] = self.procs["c3"].wait(timeout=p.tail_seconds + 900)
        return self.outcome

    # ------------------------------------------------------------------ steps
    def _submit(self, name: str, extra: str) -> None:
        self.procs[name] = self.fleet.submit(f"{self.plan.overrides} {extra}", name)

    def _settled(self, events: list[dict]) -> bool:
        ids = [self.fleet.node_id(n) for n in self.honest]
        return all(i and accepted(events, i) for i in ids) and all(
            quarantined(events, self.fleet.node_id(n)) for n in self.red)

    def _end(self, run: str, timeout: float) -> None:
        """Wait until the run's ServerApp is gone (it dies with its SuperLink, or was killed)."""
        deadline = time.monotonic() + timeout
        while self.fleet.serverapps() and time.monotonic() < deadline:
            time.sleep(1)
        proc = self.procs[run]
        self.outcome.exit_codes[run] = proc.poll()

    def _burst(self, kinds: tuple[str, ...]) -> None:
        """Faults at once on distinct random honest nodes; each awaited to its recovery."""
        targets = self.rng.sample(self.honest, len(kinds))
        faults = []
        for kind, name in zip(kinds, targets, strict=True):
            if kind not in NODE_FAULTS:
                raise ValueError(f"unknown node fault {kind!r}; one of {NODE_FAULTS}")
            faults.append(self.fleet.crash(name, "c1") if kind == "node-crash"
                          else self.fleet.kill_worker(name, "c1"))
        deadline = time.monotonic() + self.plan.recover_timeout
        while time.monotonic() < deadline:
            events = self.fleet.events("c1")
            for fault in faults:
                if fault.kind == "node-crash" and self._index(fault) not in \
                        self.outcome.recovered:
                    self._stuck(fault)
                    if not self.fleet.alive(fault.target):
                        self._bring_back(fault, events)
                self._recovered(fault, "c1", events, wait=False)
            if all(self._index(x) in self.outcome.recovered for x in faults):
                return
            time.sleep(2)

    def _bring_back(self, fault: Fault, events: list[dict]) -> None:
        """Start a crashed node again once the SuperLink has let its old session go.

        Flower refuses a SuperNode whose key still has a live session (exit
        305) until two heartbeats are missed; the server's error reply for
        the node says that happened (or, without a message in flight, a fixed
        wait).  A start that still fails is retried on the next call.
        """
        node = self.fleet.node_id(fault.target)
        told = any(e["event"] == "error" and e["node"] == node and e["time"] > fault.at
                   for e in events)
        last = fault.detail.get("tried", 0.0)
        if (told or time.time() - fault.at > RESTART_AFTER_S) and time.time() - last > 15:
            fault.detail["tried"] = time.time()
            fault.detail["starts"] = fault.detail.get("starts", 0) + 1
            tries = fault.detail.setdefault("attempts", [])  # what a failure report shows
            try:
                self.fleet.start(fault.target)
            except RuntimeError as err:  # it exited at once: tried again on a later call
                tries.append(f"{time.strftime('%H:%M:%S')} failed: {str(err)[-300:]}")
                return
            tries.append(f"{time.strftime('%H:%M:%S')} started pid "
                         f"{(self.fleet.record(f'supernode-{fault.target}') or {}).get('pid')}")
            fault.back_at = time.time()

    def _stuck(self, fault: Fault) -> None:
        """A node started again that has not served for :data:`STUCK_AFTER_S`: kill it all.

        Seen once in CI (flwr 1.41, cause not found): a restarted docs SuperNode
        whose worker never answered its first message, while the SuperNode kept
        the node's session, so every later start exited 305.  An operator kills
        what is left of the node and starts it again; so does the campaign, and
        the attempts say so in the failure report if that does not help either.
        """
        if fault.back_at is None or time.time() - fault.back_at < STUCK_AFTER_S:
            return
        killed = self.fleet.kill_node(fault.target)
        fault.detail.setdefault("attempts", []).append(
            f"{time.strftime('%H:%M:%S')} no accepted update {STUCK_AFTER_S:.0f}s after the "
            f"start: killed {killed}")
        fault.back_at, fault.detail["tried"] = None, 0.0

    def _revive_dead(self) -> None:
        for name in self.fleet.nodes:
            if not self.fleet.alive(name):
                self.fleet.start(name)

    def _index(self, fault: Fault) -> int:
        return next(i for i, x in enumerate(self.outcome.faults) if x is fault)

    def _recovered(self, fault: Fault, run: str, events: list[dict] | None,
                   wait: bool = True) -> None:
        """Record the first accepted update after ``fault`` (of its node, for node faults)."""
        if wait:
            try:
                events = self.fleet.wait_for(run, lambda ev: bool(self._after(fault, ev)),
                                             self.plan.recover_timeout,
                                             f"an accepted update after {fault.kind}")
            except AssertionError:
                return
        ups = self._after(fault, events or [])
        if ups:
            self.outcome.recovered[self._index(fault)] = ups[0]["time"]

    def _after(self, fault: Fault, events: list[dict]) -> list[dict]:
        """Accepted updates that show recovery from ``fault``.

        For a node fault, of that node and from a process other than the worker
        killed (a reply the old worker sent just before the kill does not count).
        """
        if fault.kind not in NODE_FAULTS:
            return accepted(events, None, fault.at)
        killed = fault.detail.get("pid")
        return [e for e in accepted(events, self.fleet.node_id(fault.target), fault.at)
                if killed is None or e.get("process_id") != killed]
