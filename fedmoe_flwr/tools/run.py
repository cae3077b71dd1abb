"""``fedmoe run``: a Flower simulation of the federation, with nothing left running after it.

What ``scripts/run.sh`` does, in Python so it runs the same on Linux, macOS
and Windows: start a local SuperLink (simulation mode) on a free port, submit
the app in the current directory with ``flwr run . --stream``, ask the
SuperLink how the run ended, and stop the SuperLink and every process it
started (the ServerApp, the simulation's Ray actors) by process id when the
run ends or on Ctrl-C.

::

    fedmoe run                                   # 4 simulated nodes, the pyproject defaults
    fedmoe run --nodes 3 --run-config conf/stragglers.toml --run-config "run.duration=60"

Several ``--run-config`` values (preset files and ``"k=v"`` strings) are
merged in order, later ones winning (flwr itself keeps only the last).  State
(Flower's home, logs, the model cache) lives in ``$FEDMOE_STATE`` (default
``./.fedmoe``).  Extra arguments go to ``flwr run``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedmoe_flwr.config import ConfigError
from fedmoe_flwr.tools.actors import default_actors, gpu_share
from fedmoe_flwr.tools.overrides import merge, to_toml

RUN_HELP = """usage: fedmoe run [--nodes N] [--run-config FILE_OR_PAIRS]... [flwr run arguments]

A Flower simulation of the app in the working directory: its own SuperLink on a
free 127.0.0.1 port, `flwr run . --stream`, the run's final status, and every
process it started stopped by process id at the end or on Ctrl-C.

  --nodes N            simulated SuperNodes (default: $NUM_SUPERNODES or 4)
  --run-config VALUE   a TOML file (conf/fedbuff.toml) or 'key=value key=value'
                       pairs; several are merged in order (flwr keeps only its last)
  other arguments      passed to `flwr run` unchanged (flwr run --help)

Environment: SIM_ACTORS (Ray actors; default max(4, cores), at most the nodes and
what memory allows),
FEDMOE_STATE (SuperLink home, logs, model cache; default ./.fedmoe),
FEDMOE_LOG_LEVEL=DEBUG (every library's output), FEDMOE_NO_SYMLINKS=1 (pointer
files instead of symlinks in run directories)."""


@dataclass(frozen=True)
class Simulation:
    """Where a simulation keeps its state, and how big it is."""

    state: Path  # Flower home, logs, model cache
    nodes: int
    actors: int


def executable(name: str) -> str:
    """A console script of this environment (``flwr``, ``flower-superlink``), on any OS."""
    here = Path(sys.executable).parent
    found = shutil.which(name, path=str(here)) or shutil.which(name)
    if found is None:
        raise ConfigError(f"{name} not found next to {sys.executable} or on PATH; install "
                          f"the pinned packages (requirements.lock)")
    return found


def free_port() -> int:
    """A TCP port nobody listens on now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(sim: Simulation, port: int) -> dict[str, str]:
    """The environment of the SuperLink and ``flwr``: offline, quiet, in our state dir."""
    return {**os.environ, "FLWR_HOME": str(sim.state / "flwr-home"),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",  # the venv has everything
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FEDMOE_CACHE": os.environ.get("FEDMOE_CACHE", str(sim.state / "cache")),
            "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(port),
            "FLWR_LOCAL_CONTROL_API_PORT": str(port)}


def start_superlink(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """A simulation SuperLink on 127.0.0.1:port, in a process group of its own."""
    flags: dict = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore
                   if os.name == "nt" else {"start_new_session": True})
    with log.open("wb") as out:
        proc = subprocess.Popen([executable("flower-superlink"), "--insecure", "--simulation",
                                 "--isolation", "subprocess", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, **flags)
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the SuperLink exited at start (code {proc.returncode}); "
                                   f"see {log}") from None
            time.sleep(0.5)
    stop_tree(proc.pid)
    raise RuntimeError(f"the SuperLink did not answer on port {port} within 120 s; see {log}")


def stop_tree(pid: int, grace: float = 10.0) -> None:
    """Stop a process and everything it started, by process id (children first)."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    family = [*root.children(recursive=True), root]
    for proc in family:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def run_status(env: dict[str, str]) -> str:
    """How the newest run on the SuperLink ended (``finished:completed`` when it worked)."""
    proc = subprocess.run([executable("flwr"), "ls", "--format", "json"], env=env,
                          capture_output=True, text=True, timeout=120)
    try:
        runs = json.loads(proc.stdout).get("runs", [])
    except ValueError:
        return "unknown"
    return max(runs, key=lambda r: int(r["run-id"]))["status"] if runs else "unknown"


def split_args(argv: Sequence[str]) -> tuple[list[str], list[str], int | None]:
    """``--run-config`` values, the other ``flwr run`` arguments, and ``--nodes``."""
    overrides, rest, nodes = [], [], None
    it = iter(argv)
    for arg in it:
        if arg in ("--run-config", "-c", "--nodes"):
            value = next(it, None)
            if value is None:
                raise ConfigError(f"{arg} needs a value")
            if arg == "--nodes":
                if not value.isdigit() or not 1 <= int(value) <= 10_000:
                    raise ConfigError(f"--nodes must be a whole number in [1, 10000], got "
                                      f"{value!r}")
                nodes = int(value)
            else:
                overrides.append(value)
        elif arg.startswith("--run-config="):
            overrides.append(arg.removeprefix("--run-config="))
        else:
            rest.append(arg)
    return overrides, rest, nodes


def simulate(argv: Sequence[str], app: Path | None = None) -> int:
    """Run one simulation of the app in ``app`` (default: the working directory)."""
    overrides, rest, nodes = split_args(argv)
    app = (app or Path.cwd()).resolve()
    nodes = nodes or int(os.environ.get("NUM_SUPERNODES", "4"))
    actors = int(os.environ.get("SIM_ACTORS", "0")) or default_actors(nodes)
    sim = Simulation(Path(os.environ.get("FEDMOE_STATE", app / ".fedmoe")).resolve(), nodes,
                     actors)
    (sim.state / "flwr-home").mkdir(parents=True, exist_ok=True)
    (sim.state / "logs").mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = environment(sim, port)
    args = list(rest)
    if overrides:
        merged = sim.state / f"run-config-{port}.toml"
        merged.write_text(to_toml(merge(overrides)), encoding="utf-8")
        args += ["--run-config", str(merged)]
    log = sim.state / "logs" / f"superlink-{port}.log"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below on TERM
    link = start_superlink(env, port, log)
    try:
        print(f"SuperLink pid {link.pid} on 127.0.0.1:{port} (log: {log}); {nodes} simulated "
              f"nodes on {actors} actor(s)", flush=True)
        federation = (f"num-supernodes={nodes} client-resources-num-cpus=1 "
                      f"init-args-num-cpus={actors}")
        share = gpu_share(actors)
        if share:
            federation += f" client-resources-num-gpus={share}"  # else Ray hides the GPUs
        subprocess.run([executable("flwr"), "run", ".", "--stream", "--federation-config",
                        federation, *args], cwd=app, env=env, check=False)
        status = run_status(env)  # `flwr run --stream` exits 0 even when the ServerApp failed
    finally:
        stop_tree(link.pid)
    if status != "finished:completed":
        print(f"The run did not complete (SuperLink status: {status}); its error is above.",
              file=sys.stderr)
        return 1
    print(f"\nResults: the 'results:' line above (default: {app / 'outputs' / 'latest'}).\n"
          f"  experts/<specialty>/ and gateway/ are PEFT adapters; summary.json holds the "
          f"eval matrix.")
    return 0
