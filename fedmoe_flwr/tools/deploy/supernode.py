"""``fedmoe deploy supernode start | stop | status``: a SuperNode and its warm worker.

A SuperNode runs ``flower-supernode`` with the node's identity in
``--node-config``; beside it, unless ``--cold``, runs the warm worker
(``python -m fedmoe_flwr.node.worker``) that executes its ClientApp tasks and
alone holds the secret of its Runtime API.  Both have a pid file and a log,
and both are stopped together.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from fedmoe_flwr.tools.deploy import procs, validate
from fedmoe_flwr.tools.deploy.files import private_dir, write_replace
from fedmoe_flwr.tools.deploy.keys import key_path
from fedmoe_flwr.tools.deploy.layout import Layout
from fedmoe_flwr.tools.deploy.validate import DeployError
from fedmoe_flwr.tools.run import executable, free_port

START_CHECK_S = 1.0  # a SuperNode that exits within this is reported as failing at start
WORKER_MODULE = "fedmoe_flwr.node.worker"


@dataclass(frozen=True)
class Node:
    """A checked ``supernode start`` command line, defaults filled in."""

    name: str
    superlink: str
    specialty: str
    data: str
    speed: str
    gpus: str  # training ranks of one update: a count or "all" (node config 'gpus')
    model_source: str | None
    port: int | None
    ca: Path
    insecure: bool
    cold: bool

    @classmethod
    def from_args(cls, layout: Layout, opts: dict[str, Any]) -> Node:
        """Fill in the defaults that depend on the layout (SuperLink address, CA)."""
        ca = opts["ca"] if opts["ca"] is not None else layout.certs / "ca.crt"
        return cls(opts["name"], opts["superlink"] or f"127.0.0.1:{layout.port}",
                   opts["specialty"], opts["data"], opts["speed"] or "1",
                   opts["gpus"] or "1", opts["model_source"], opts["port"],
                   (layout.root / ca).resolve(), opts["insecure"], opts["cold"])

    def node_config(self) -> str:
        """Flower's ``--node-config``: only checked values, each a TOML literal string."""
        config = (f"specialty='{self.specialty}' data-path='{self.data}' "
                  f"speed-factor={self.speed}")
        if self.gpus != "1":
            config += f" gpus='{self.gpus}'"
        return config + (f" model-source='{self.model_source}'" if self.model_source else "")


def _auth_args(layout: Layout, node: Node) -> list[str]:
    """TLS and authentication arguments, after checking their files exist."""
    if node.insecure:
        return ["--insecure"]
    if not node.ca.is_file():
        raise DeployError(f"{node.ca} is missing; copy the SuperLink's CA certificate "
                          f"(certs/ca.crt) here and pass --ca")
    key = key_path(layout.keys, node.name)
    if not key.is_file():
        raise DeployError(f"{key} is missing; create the key pair with 'fedmoe deploy key "
                          f"{node.name}' and register its .pub")
    return ["--root-certificates", str(node.ca), "--auth-supernode-private-key", str(key)]


def _secret(layout: Layout, name: str) -> Path:
    """A fresh Runtime API secret for the node's worker: 32 random bytes, mode 0600."""
    secret = private_dir(layout.secrets) / f"{name}.secret"
    write_replace(secret, os.urandom(32), 0o600)
    return secret


def _previous(layout: Layout, node: Node) -> None:
    """Refuse a node that runs; clear the pid files (and worker) a crashed one left."""
    pidfile = layout.pidfile(f"supernode-{node.name}")
    found = procs.lookup(pidfile)
    if found.state == "running":
        raise DeployError(f"SuperNode {node.name} is already running (pid "
                          f"{found.record.pid})")
    procs.stop([(pidfile, f"SuperNode {node.name}")], quiet=True)
    procs.stop([(layout.pidfile(f"worker-{node.name}"), f"the previous worker of "
                 f"{node.name}")], quiet=True)


def start(layout: Layout, opts: dict[str, Any]) -> None:
    """Start a SuperNode and, unless ``--cold``, its warm worker."""
    node = Node.from_args(layout, opts)
    auth = _auth_args(layout, node)
    _previous(layout, node)
    layout.make_dirs()
    port = node.port or free_port()  # each SuperNode on a machine: its own Runtime API port
    args = [executable("flower-supernode"), "--superlink", node.superlink, "--port",
            str(port), "--host", "127.0.0.1", "--node-config", node.node_config()]
    secret = None
    if node.cold:
        args += ["--isolation", "subprocess"]
    else:  # a warm worker runs the tasks; only it holds the Runtime API's secret
        secret = _secret(layout, node.name)
        args += ["--isolation", "process", "--superexec-auth-secret-file", str(secret)]
    pidfile = layout.pidfile(f"supernode-{node.name}")
    proc, record = procs.spawn([*args, *auth], cwd=layout.root, env=layout.env(),
                               log=layout.log(f"supernode-{node.name}"), pidfile=pidfile)
    if secret is not None:
        procs.spawn([sys.executable, "-m", WORKER_MODULE, "--runtime-api",
                     f"127.0.0.1:{port}", "--secret-file", str(secret), "--supernode-pid",
                     str(record.pid)], cwd=layout.root, env=layout.env(),
                    log=layout.log(f"worker-{node.name}"),
                    pidfile=layout.pidfile(f"worker-{node.name}"))
    time.sleep(START_CHECK_S)
    if proc.poll() is not None:
        procs.stop([(pidfile, "SuperNode"), (layout.pidfile(f"worker-{node.name}"),
                                             "worker")], quiet=True)
        raise DeployError(f"SuperNode {node.name} exited at once; see "
                          f"{layout.log(f'supernode-{node.name}')}")
    print(f"SuperNode {node.name} pid {record.pid}: {node.specialty} on {node.data} -> "
          f"{node.superlink}; {worker_status(layout, node.name)}; logs "
          f"{layout.logs}/{{supernode,worker}}-{node.name}.log", flush=True)


def worker_status(layout: Layout, name: str) -> str:
    """``warm worker: supervisor pid P, worker pid W``, or why there is none."""
    found = procs.lookup(layout.pidfile(f"worker-{name}"))
    if found.state == "missing":
        return "cold: a new ClientApp process per message"
    if found.state == "stale" or found.process is None:
        return "worker NOT running (stale pid file)"
    child = None
    try:
        for p in found.process.children():
            if WORKER_MODULE in p.cmdline() and "--child" in p.cmdline():
                child = p.pid
                break
    except psutil.Error:
        pass
    return f"warm worker: supervisor pid {found.record.pid}, worker pid {child or 'starting'}"


def _started(layout: Layout) -> list[str]:
    """The names of the SuperNodes with a pid file here (files of other names ignored)."""
    names = []
    for f in sorted(layout.pids.glob("supernode-*.pid")):
        n = f.stem.removeprefix("supernode-")
        try:
            names.append(validate.name(n, "NAME"))
        except DeployError:
            print(f"ignoring {f} (not a node name)", file=sys.stderr)
    return names


def stop(layout: Layout, name: str | None, every: bool) -> None:
    """Stop one node (``NAME``) or all of this machine's (``--all``), workers included."""
    if (name is None) == (not every):
        raise DeployError("usage: fedmoe deploy supernode stop NAME | --all")
    for n in _started(layout) if every else [name]:
        procs.stop([(layout.pidfile(f"supernode-{n}"), f"SuperNode {n}")])
        procs.stop([(layout.pidfile(f"worker-{n}"), f"worker of {n}")], quiet=every)


def status(layout: Layout) -> None:
    """One line per SuperNode started from this machine."""
    names = _started(layout)
    for n in names:
        found = procs.lookup(layout.pidfile(f"supernode-{n}"))
        if found.state == "running":
            print(f"SuperNode {n} running (pid {found.record.pid}); "
                  f"{worker_status(layout, n)}")
        else:
            print(f"SuperNode {n} not running (stale pid file)")
    if not names:
        print("no SuperNodes started from this machine")
