"""A TLS + authenticated deployment on 127.0.0.1 that can be broken on purpose (chaos tests).

Shared by ``tests/test_e2e_chaos.py`` and ``bench/chaos.py``.  Everything is
started through the Python command ``fedmoe deploy`` (what ``scripts/deploy.sh``
wraps, which ``tests/test_e2e_deploy.py`` drives: its own process group each,
JSON pid files under ``FEDMOE_DEPLOY/pids``), except the red-team SuperNode:
``supernode start`` writes only checked node-config keys and has no
``red-team``, so :meth:`Fleet.start` starts that one node as the command would
(same layout, pid files and logs) with ``red-team='...'`` added to its node
config.  :meth:`Fleet.stop_all` stops every process group it ever saw in a
pid file, so a failing test or benchmark leaves nothing behind.

The faults are what machines do: ``kill -9`` of a SuperNode and its worker
(process groups), of a worker alone (its supervisor restarts it), of the
SuperLink process (its state database stays) and of the ServerApp
(``flwr-serverapp``, which the SuperLink's SuperExec spawned).  What Flower
1.41 does with them, measured here:

- A SuperNode restarted while the SuperLink still counts the old one online
  (until two heartbeats are missed) exits with code 305 ("Failed to activate
  SuperNode"), so a crashed node is brought back once the SuperLink has
  declared it unavailable, and started again until it stays up.
- ``flwr-serverapp`` runs with ``--parent-pid`` and exits within seconds of
  its SuperLink: a SuperLink restart ends the run (the state database keeps
  the SuperNodes' keys and ids, so they reconnect by themselves), and the run
  is continued with ``run.resume-from``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
FEDMOE = Path(sys.executable).parent / "fedmoe"
WORKER_WAIT_S = 300.0  # kill_worker waits this long for a worker between two lives


@dataclass(frozen=True)
class NodeSpec:
    """One SuperNode: its deploy name, specialty, data file and red-team attack (if any)."""

    name: str
    specialty: str
    data: str
    red_team: str = ""


@dataclass
class Fault:
    """A fault injected: what, on which node (or ``superlink`` / ``serverapp``), when."""

    kind: str  # node-crash | worker-kill | superlink-restart | serverapp-kill
    target: str
    at: float  # wall clock (Unix seconds), like the events' ``time``
    run: str  # the run it hit
    back_at: float | None = None  # when what was killed was started again (if we did)
    detail: dict = field(default_factory=dict)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_events(path: Path) -> list[dict]:
    """``metrics.jsonl`` as dicts; a half-written line (a killed server's) is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


class Fleet:
    """The deployment: SuperLink, SuperNodes with warm workers, runs, and faults."""

    def __init__(self, work: Path, nodes: Sequence[NodeSpec]) -> None:
        self.work = work
        self.nodes = {n.name: n for n in nodes}
        self.port = free_port()
        self.deploy = work / "deploy"
        self.out = work / "out"
        self.env = {**os.environ, "FEDMOE_DEPLOY": str(self.deploy),
                    "FEDMOE_SUPERLINK_PORT": str(self.port),
                    "FEDMOE_SUPERLINK_HOST": "127.0.0.1"}
        self.faults: list[Fault] = []
        self._ids: dict[str, str] = {}
        self._seen: dict[int, list[str]] = {}  # every pid file's process: pid -> command line

    # ------------------------------------------------------------------ fedmoe deploy
    def sh(self, *args: str, check: bool = True, timeout: float = 180) -> str:
        """``fedmoe deploy ARGS`` with this fleet's state directory and port."""
        proc = subprocess.run([FEDMOE, "deploy", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        self._remember()
        out = proc.stdout + proc.stderr
        if check and proc.returncode:
            raise RuntimeError(f"fedmoe deploy {' '.join(args)} failed ({proc.returncode}):"
                               f"\n{out}")
        return out

    def up(self) -> None:
        """Certificates, the SuperLink, and every node's key, registration and start."""
        self.sh("certs", "127.0.0.1")
        self.sh("superlink", "start")
        for name in self.nodes:
            self.sh("key", name)
            self.sh("register", f"{name}.pub")
            self.start(name)

    def start(self, name: str) -> None:
        """Start a node's SuperNode and warm worker (again, after a crash)."""
        n = self.nodes[name]
        if not n.red_team:
            self.sh("supernode", "start", name, "--superlink", f"127.0.0.1:{self.port}",
                    "--specialty", n.specialty, "--data", n.data)
            return
        self._start_red_team(n)
        self._remember()

    def _start_red_team(self, n: NodeSpec) -> None:
        """What ``fedmoe deploy supernode start`` does, with ``red-team`` in the node config."""
        from fedmoe_flwr.tools.deploy import procs
        from fedmoe_flwr.tools.deploy.files import private_dir, write_replace
        from fedmoe_flwr.tools.deploy.layout import Layout
        from fedmoe_flwr.tools.deploy.supernode import WORKER_MODULE
        from fedmoe_flwr.tools.run import executable

        layout = Layout.from_env(self.env, ROOT)
        for what in (f"supernode-{n.name}", f"worker-{n.name}"):  # what a crash left
            self._killpg(what)
            layout.pidfile(what).unlink(missing_ok=True)
        secret = private_dir(layout.secrets) / f"{n.name}.secret"
        write_replace(secret, os.urandom(32), 0o600)
        port = free_port()
        config = (f"specialty='{n.specialty}' data-path='{n.data}' speed-factor=1 "
                  f"red-team='{n.red_team}'")
        _, record = procs.spawn(
            [executable("flower-supernode"), "--superlink", f"127.0.0.1:{self.port}",
             "--port", str(port), "--host", "127.0.0.1", "--node-config", config,
             "--isolation", "process", "--superexec-auth-secret-file", str(secret),
             "--root-certificates", str(layout.certs / "ca.crt"),
             "--auth-supernode-private-key", str(layout.keys / n.name)],
            cwd=ROOT, env=layout.env(), log=layout.log(f"supernode-{n.name}"),
            pidfile=layout.pidfile(f"supernode-{n.name}"))
        procs.spawn([sys.executable, "-m", WORKER_MODULE, "--runtime-api", f"127.0.0.1:{port}",
                     "--secret-file", str(secret), "--supernode-pid", str(record.pid)],
                    cwd=ROOT, env=layout.env(), log=layout.log(f"worker-{n.name}"),
                    pidfile=layout.pidfile(f"worker-{n.name}"))

    # ------------------------------------------------------------------ processes
    def record(self, what: str) -> dict | None:
        """The pid file of ``superlink``, ``supernode-NAME`` or ``worker-NAME`` (JSON)."""
        try:
            return json.loads((self.deploy / "pids" / f"{what}.pid").read_text())
        except (OSError, ValueError):
            return None

    def _remember(self) -> None:
        for pidfile in (self.deploy / "pids").glob("*.pid"):
            rec = self.record(pidfile.stem)
            if rec and isinstance(rec.get("pid"), int) and isinstance(rec.get("cmdline"), list):
                self._seen[rec["pid"]] = rec["cmdline"]

    @staticmethod
    def _live(pid: int, cmdline: list[str]) -> psutil.Process | None:
        """The process ``pid`` if it still runs ``cmdline``.

        No create-time check: on a VM whose clock steps, psutil's computed
        create times move by seconds and a live process would look stale (and
        never be cleaned up); a command line with this fleet's unique paths is
        enough to tell a reused pid.
        """
        try:
            p = psutil.Process(pid)
            if p.status() == psutil.STATUS_ZOMBIE or p.cmdline() != cmdline:
                return None
            return p
        except psutil.Error:
            return None

    def process(self, what: str) -> psutil.Process | None:
        """The live process a pid file names (``superlink``, ``supernode-NAME``, ...)."""
        rec = self.record(what)
        return self._live(rec["pid"], rec["cmdline"]) if rec else None

    def alive(self, name: str) -> bool:
        """Whether a node's SuperNode runs."""
        return self.process(f"supernode-{name}") is not None

    def node_id(self, name: str) -> str | None:
        """A node's Flower node id (its SuperNode log says it; the same across restarts)."""
        if name not in self._ids:
            log = self.deploy / "logs" / f"supernode-{name}.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            found = re.search(r"SuperNode ID: (\d+)", text)
            if found is None:
                return None
            self._ids[name] = found.group(1)
        return self._ids[name]

    def _killpg(self, what: str) -> None:
        p = self.process(what)
        if p is not None:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # each was started in a session of its own
            except ProcessLookupError:
                pass

    def kill_node(self, name: str) -> list[int]:
        """kill -9 every process of a node, in a pid file or not (by its key and secret).

        A node's SuperNode names its private key on its command line and its worker
        its secret file; both paths are this fleet's own, so nothing else matches.
        """
        marks = (str(self.deploy / "keys" / name), str(self.deploy / "secrets" /
                                                       f"{name}.secret"))
        return self._kill_where(lambda part: part in marks)

    def worker_child(self, name: str) -> psutil.Process | None:
        """The worker process (``--child``) under a node's supervisor."""
        sup = self.process(f"worker-{name}")
        try:
            for p in sup.children() if sup else []:
                if "--child" in p.cmdline():
                    return p
        except psutil.Error:
            pass
        return None

    def serverapps(self) -> list[psutil.Process]:
        """``flwr-serverapp`` processes of this fleet's SuperLink (by its ``FLWR_HOME``)."""
        found = []
        home = str(self.deploy / "flwr-home")
        for p in psutil.process_iter(["cmdline"]):
            try:
                if "flwr-serverapp" in " ".join(p.info["cmdline"] or []) and \
                        p.environ().get("FLWR_HOME") == home:
                    found.append(p)
            except psutil.Error:
                continue
        return found

    # ------------------------------------------------------------------ faults
    def crash(self, name: str, run: str) -> Fault:
        """kill -9 a node's SuperNode and worker (process groups), as a dying machine."""
        child = self.worker_child(name)
        fault = Fault("node-crash", name, time.time(), run,
                      detail={"pid": child.pid if child else None})
        for what in (f"supernode-{name}", f"worker-{name}"):
            self._killpg(what)
        self.faults.append(fault)
        return fault

    def kill_worker(self, name: str, run: str) -> Fault:
        """kill -9 only the worker process of a node; its supervisor starts a new one.

        A worker between two lives (its supervisor is starting a fresh one after an
        earlier fault or a new app) is waited for, up to :data:`WORKER_WAIT_S` (a
        bound for a hang, not a speed target: a loaded machine starts Python slowly).
        """
        deadline = time.monotonic() + WORKER_WAIT_S
        while (child := self.worker_child(name)) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        if child is None:
            raise RuntimeError(f"node {name} has no worker process to kill after "
                               f"{WORKER_WAIT_S:.0f} s; {self._worker_state(name)}")
        fault = Fault("worker-kill", name, time.time(), run, detail={"pid": child.pid})
        child.kill()
        self.faults.append(fault)
        return fault

    def _worker_state(self, name: str) -> str:
        """What a failure report needs: the supervisor, its children, the worker log's tail."""
        sup = self.process(f"worker-{name}")
        try:
            children = [c.cmdline() for c in sup.children()] if sup else []
        except psutil.Error as err:  # it ended while being looked at
            children = [f"({type(err).__name__})"]
        log = self.deploy / "logs" / f"worker-{name}.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(none)"
        return (f"supervisor {self.record(f'worker-{name}')} {'alive' if sup else 'gone'}, "
                f"children {children}; {log} ends:\n{tail}")

    def restart_superlink(self, run: str, down: float = 5.0) -> Fault:
        """kill -9 the SuperLink process, wait ``down`` s, start it again on its database."""
        fault = Fault("superlink-restart", "superlink", time.time(), run)
        p = self.process("superlink")
        if p is not None:
            p.kill()
            p.wait(30)
        time.sleep(down)
        self.sh("superlink", "start")
        fault.back_at = time.time()
        self.faults.append(fault)
        return fault

    def kill_serverapp(self, run: str) -> Fault:
        """kill -9 the running ServerApp process(es) of this fleet."""
        apps = self.serverapps()
        if not apps:
            raise RuntimeError("no flwr-serverapp process to kill")
        fault = Fault("serverapp-kill", "serverapp", time.time(), run,
                      detail={"pids": [p.pid for p in apps]})
        for p in apps:
            try:
                p.kill()
            except psutil.Error:
                pass
        self.faults.append(fault)
        return fault

    def logs_tail(self, chars: int = 2500) -> str:
        """The end of every SuperNode and worker log (appended across restarts)."""
        parts = []
        for log in sorted((self.deploy / "logs").glob("*-*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    # ------------------------------------------------------------------ runs
    def submit(self, overrides: str, name: str) -> subprocess.Popen:
        """``fedmoe deploy submit`` of run ``name`` into ``out/`` (in the background)."""
        with (self.work / f"{name}.log").open("w") as log:
            return subprocess.Popen(
                [FEDMOE, "deploy", "submit", "--run-config",
                 f"{overrides} run.name='{name}' run.output-dir='{self.out}'"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def events(self, name: str) -> list[dict]:
        """The events run ``name`` logged so far."""
        return read_events(self.out / name / "metrics.jsonl")

    def wait_for(self, name: str, predicate: Callable[[list[dict]], bool], timeout: float,
                 what: str) -> list[dict]:
        """Poll run ``name``'s events until ``predicate``; a timeout names what was awaited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events(name)
            if predicate(events):
                return events
            time.sleep(1)
        log = self.work / f"{name}.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")

    def stop_all(self, *procs: subprocess.Popen | None) -> None:
        """Stop everything started here: submits, ServerApps, every group seen, ``stop-all``."""
        for proc in procs:
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.serverapps():
            try:
                p.kill()
            except psutil.Error:
                pass
        self._remember()
        for pid, cmdline in self._seen.items():  # the campaign is over: no graceful stop
            if self._live(pid, cmdline) is not None:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        try:  # what is left of the pid files: stale now, so removed without a signal
            self.sh("stop-all", check=False, timeout=120)
        except subprocess.TimeoutExpired:
            pass
        self._sweep()

    def _sweep(self) -> None:
        """Kill what still names this fleet's own directory on its command line.

        A pid file names the last process started for a name; a node started again
        while an earlier start of it was still retrying (seen: a docs SuperNode left
        running after the campaign) is in no pid file.  The directory is this
        fleet's unique temporary path, so nothing else can match.
        """
        mine = str(self.deploy)
        self._kill_where(lambda part: mine in part)

    @staticmethod
    def _kill_where(matches: Callable[[str], bool]) -> list[int]:
        """kill -9 every process (but this one) with a command-line part that ``matches``."""
        killed = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if p.info["pid"] != os.getpid() and any(
                        matches(part) for part in p.info["cmdline"] or []):
                    p.kill()
                    killed.append(p.info["pid"])
            except psutil.Error:
                continue
        return killed
