"""Deployment on 127.0.0.1 with `fedmoe deploy` (what `bash scripts/deploy.sh` execs), with no
bash on PATH: a real TLS SuperLink with SuperNode
authentication, three authenticated SuperNodes with warm workers and one unregistered; kill -9
of a node (SuperNode and worker) mid-run and its restart; `fedmoe stop`; then a second run
resumed from the first one's checkpoints.

Every process is started through `fedmoe deploy` (each in its own process group, pid files
under the test's FEDMOE_DEPLOY) and stopped by those ids at the end, whatever happens. PATH
holds only the venv's scripts and a `bash` (and `sh`) that records any call and fails, so
the whole deployment (certificates, keys, SuperLink, SuperNodes, warm workers, submit,
stop-all) is shown to need no shell, as on Windows.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from fedmoe_flwr.server.artifacts import load_adapter_weights

ROOT = Path(__file__).resolve().parents[1]
FEDMOE = Path(sys.executable).parent / "fedmoe"
pytestmark = [pytest.mark.slow, pytest.mark.e2e]
NODES = {"py": ("python_expert", "data/python.jsonl"), "sql": ("sql_expert", "data/sql.jsonl"),
         "docs": ("docs_expert", "data/docs.jsonl")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NO_SHELL = """#!{python}
import sys
with open({log!r}, "a") as log:
    log.write(repr(sys.argv) + "\\n")
sys.exit(127)
"""


class Fleet:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = _free_port()
        guard, self.shell_calls = tmp / "guard", tmp / "shell-calls.log"
        guard.mkdir()
        for name in ("bash", "sh"):
            (guard / name).write_text(NO_SHELL.format(python=sys.executable,
                                                      log=str(self.shell_calls)))
            (guard / name).chmod(0o755)
        self.env = {**os.environ, "FEDMOE_DEPLOY": str(tmp / "deploy"),
                    "PATH": f"{FEDMOE.parent}{os.pathsep}{guard}",
                    "FEDMOE_SUPERLINK_PORT": str(self.port), "FEDMOE_SUPERLINK_HOST": "127.0.0.1"}
        self.pids = tmp / "deploy" / "pids"

    def sh(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        proc = subprocess.run([str(FEDMOE), "deploy", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        out = proc.stdout + proc.stderr
        if check:
            assert proc.returncode == 0, out
        return out

    def start_node(self, name: str, specialty: str, data: str) -> None:
        self.sh("supernode", "start", name, "--superlink", f"127.0.0.1:{self.port}",
                "--specialty", specialty, "--data", data)

    def pid(self, name: str) -> int:  # pid files are JSON: pid, create time, command line
        return json.loads((self.pids / f"{name}.pid").read_text())["pid"]

    def crash(self, name: str) -> None:
        """kill -9 a node's SuperNode and its worker, as a machine that dies would."""
        for what in (f"supernode-{name}", f"worker-{name}"):
            try:
                os.killpg(self.pid(what), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def submit(self, overrides: str, name: str) -> subprocess.Popen:
        log = (self.tmp / f"{name}.log").open("w")
        return subprocess.Popen(
            [str(FEDMOE), "deploy", "submit", "--run-config",
             f"{overrides} run.name='{name}' run.output-dir='{self.tmp}/out'"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def events(self, name: str) -> list[dict]:
        path = self.tmp / "out" / name / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def wait_for(self, name: str, predicate, timeout: float, what: str) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events(name)
            if predicate(events):
                return events
            time.sleep(2)
        log = (self.tmp / f"{name}.log").read_text()[-3000:]
        raise AssertionError(f"timed out waiting for {what}\n{log}")

    def stop_all(self) -> None:
        # Belt and braces: every process group of the pid files, read before stop-all (which
        # removes the files, and never signals one whose process it cannot verify), is killed
        # after it; a group still there is reported.
        groups = {}
        for pidfile in self.pids.glob("*.pid"):
            try:
                groups[pidfile.stem] = json.loads(pidfile.read_text())["pid"]
            except (OSError, ValueError, KeyError, TypeError):
                pass
        out = self.sh("stop-all", check=False)
        leaked = []
        for what, pid in groups.items():
            try:
                os.killpg(pid, signal.SIGKILL)
                leaked.append(what)
            except (ProcessLookupError, PermissionError):
                pass
        if leaked:
            warnings.warn(f"stop-all left {leaked} running:\n{out}", stacklevel=1)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    fleet = Fleet(tmp_path_factory.mktemp("deploy"))
    try:
        fleet.sh("certs", "127.0.0.1")
        fleet.sh("superlink", "start")
        for name, (specialty, data) in NODES.items():
            fleet.sh("key", name)
            fleet.sh("register", f"{name}.pub")
            fleet.start_node(name, specialty, data)
        fleet.sh("key", "rogue")  # a key pair that is never registered
        fleet.start_node("rogue", "docs_expert", "data/docs.jsonl")
        yield fleet
    finally:
        fleet.stop_all()


def _versions(events, specialty):
    return [e["version"] for e in events if e["event"] == "version" and e["adapter"] == specialty]


def test_unregistered_supernode_cannot_join(fleet):
    deadline = time.monotonic() + 60
    log = fleet.tmp / "deploy" / "logs" / "supernode-rogue.log"
    while time.monotonic() < deadline and "Failed to activate SuperNode" not in log.read_text():
        time.sleep(1)
    assert "Failed to activate SuperNode" in log.read_text()
    while time.monotonic() < deadline and "rogue running" in fleet.sh("supernode", "status"):
        time.sleep(1)
    assert "SuperNode rogue not running" in fleet.sh("supernode", "status")


def _updates(events, node):
    return [e for e in events if e["event"] == "update" and e["node"] == node]


def _training_share(updates):
    """A node's training seconds over the span from its first train message to its last reply."""
    ups = sorted(updates, key=lambda e: e["time"])
    return sum(e["train_seconds"] for e in ups) / (ups[-1]["time"] - ups[0]["time"]
                                                    + ups[0]["round_trip"])


def test_tls_auth_run_with_overlapped_warm_workers_survives_kill_9_and_the_node_rejoins(fleet):
    # Warm workers answer in seconds; the long pole is Flower noticing the kill (two missed
    # 30 s heartbeats). The run is long and ended by `fedmoe stop` once everything was seen.
    # train.overlap: the nodes train while their updates travel (stop-and-wait deployments
    # are the resume test below, and every simulation test).
    run = fleet.submit("run.duration=900 train.sync-interval=3 run.rejoin-backoff=5 "
                       "train.overlap=true", "r1")
    out = fleet.tmp / "out" / "r1"
    try:
        events = fleet.wait_for("r1", lambda ev: len({e["node"] for e in ev if e["event"] ==
                                                       "update"}) == 3 and all(
            len(_updates(ev, n)) >= 3 for n in {e["node"] for e in ev if e["event"] == "update"}),
            400, "three updates from every node")
        registered = {e["node"]: e["specialty"] for e in events if e["event"] == "register"}
        assert sorted(registered.values()) == sorted(s for s, _ in NODES.values())  # no rogue
        for node in registered:  # one warm process per node: the model stays loaded in it
            ups = _updates(events, node)  # (load times are measured in bench/warm_vs_cold.py)
            assert len({e["process_id"] for e in ups}) == 1, ups
            # continuous training: every update after the first was partly trained while the
            # one before it travelled (how much of the time a node trains depends on the
            # machine: bench/overlap.py measures it side by side with stop-and-wait)
            assert all(e["in_flight_seconds"] > 0 for e in ups[1:]), ups
            assert 0 < _training_share(ups) <= 1.05, ups  # seconds add up (clock slack)
        sql_node = next(n for n, s in registered.items() if s == "sql_expert")
        fleet.crash("sql")  # crash, no clean shutdown
        killed_at = {s: max(_versions(events, s)) for s in ("python_expert", "docs_expert")}
        events = fleet.wait_for("r1", lambda ev: any(
            e["event"] == "error" and e["node"] == sql_node for e in ev), 200,
            "the error reply for the killed node")
        fleet.start_node("sql", *NODES["sql"])
        events = fleet.wait_for("r1", lambda ev: sum(
            e["event"] == "register" and e["node"] == sql_node for e in ev) >= 2, 200,
            "the restarted node to re-register")
        sql_before = max(_versions(events, "sql_expert"))
        rejoin_at = max(e["time"] for e in events if e["event"] == "register"
                        and e["node"] == sql_node)
        fleet.wait_for("r1", lambda ev: any(e["time"] > rejoin_at for e in _updates(ev, sql_node)),
                       200, "an update of the restarted node")
        stop = subprocess.run([str(FEDMOE), "stop", str(out)], capture_output=True, text=True)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert run.wait(timeout=300) == 0, (fleet.tmp / "r1.log").read_text()[-3000:]
    finally:
        if run.poll() is None:  # a failed check: end the ServerApp too, not only `flwr run`
            subprocess.run([str(FEDMOE), "stop", str(out)], capture_output=True)
            try:
                run.wait(timeout=180)
            except subprocess.TimeoutExpired:
                run.kill()
    events = fleet.events("r1")
    for specialty, at_kill in killed_at.items():  # the others kept gaining versions
        assert max(_versions(events, specialty)) > at_kill
    rejoined = [e for e in _updates(events, sql_node) if e["time"] > rejoin_at]
    assert rejoined[0]["base_version"] == sql_before  # from the latest version of its expert
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"], summary
    assert "warm worker" in fleet.sh("status")
    assert not fleet.shell_calls.exists(), fleet.shell_calls.read_text()  # no shell, anywhere


def test_resume_continues_every_expert_from_its_checkpoint(fleet):
    old = fleet.tmp / "out" / "r1"
    old_versions = {s: json.loads((old / "experts" / s / "meta.json").read_text())["version"]
                    for s, _ in NODES.values()}
    # Every node is sent a train message at the start and its reply is merged (drain), so a
    # short run is enough for one update per expert.
    run = fleet.submit(f"run.duration=10 train.sync-interval=3 run.keep-versions=0 "
                       f"run.resume-from='{old}'", "r2")
    assert run.wait(timeout=600) == 0, (fleet.tmp / "r2.log").read_text()[-3000:]
    events = fleet.events("r2")
    resumed = next(e for e in events if e["event"] == "resume")
    assert resumed["versions"] == old_versions
    new = fleet.tmp / "out" / "r2"
    for specialty, v in old_versions.items():
        # The new run starts from the old checkpoint's exact weights ...
        start = new / "experts" / ".versions" / f"{specialty}-v{v:06d}"
        want = load_adapter_weights(old / "experts" / specialty)
        got = load_adapter_weights(start)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
        first = [e for e in events if e["event"] == "update" and e["specialty"] == specialty]
        assert first and first[0]["base_version"] == v
        # ... and its versions only go up.
        assert json.loads((new / "experts" / specialty / "meta.json").read_text())["version"] > v
