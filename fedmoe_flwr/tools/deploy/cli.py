"""Dispatch of ``fedmoe deploy SUBCOMMAND``: check every argument, then run one command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fedmoe_flwr.config import ConfigError
from fedmoe_flwr.tools.deploy import certs, keys, procs, superlink, supernode, validate
from fedmoe_flwr.tools.deploy.args import SPECS, parse
from fedmoe_flwr.tools.deploy.layout import Layout
from fedmoe_flwr.tools.deploy.validate import DeployError
from fedmoe_flwr.tools.run import executable


def cmd_certs(layout: Layout, opts: dict[str, Any]) -> int:
    """A new CA and SuperLink certificate for the given hosts (all or nothing)."""
    hosts = opts["hosts"]
    certs.create(layout.certs, hosts, force=opts["force"] or layout.force)
    print(f"CA {layout.certs / 'ca.crt'} (copy it to every SuperNode machine) and SuperLink "
          f"certificate for: {' '.join(dict.fromkeys([*hosts, *certs.LOCAL]))}")
    return 0


def cmd_key(layout: Layout, opts: dict[str, Any]) -> int:
    """A SuperNode key pair ``keys/NAME`` + ``keys/NAME.pub``."""
    path = keys.create(layout.keys, opts["name"])
    print(f"SuperNode key pair {path}(.pub); register the .pub on the SuperLink machine:\n"
          f"  fedmoe deploy register {opts['name']}.pub")
    return 0


def _connection(layout: Layout, hint: str) -> Path:
    config = layout.flwr_home / "config.toml"
    if not config.is_file():
        raise DeployError(f"{config} is missing; {hint}")
    return config


def cmd_register(layout: Layout, opts: dict[str, Any]) -> int:
    """Allow a SuperNode's public key on this machine's SuperLink."""
    pub: Path = opts["key.pub"]
    if not pub.is_file() and (pub.exists() or str(pub) != pub.name):  # a path, not a name
        raise DeployError(f"{pub} is not a file" if pub.exists() else
                          f"public key file {pub} not found")
    if not pub.is_file():  # a bare file name: the key made on this machine
        pub = keys.key_path(layout.keys, validate.name(str(pub), "KEY.pub"))
        if not pub.is_file():
            raise DeployError(f"{pub} is missing; copy the SuperNode's public key here")
    keys.check_public(pub)
    _connection(layout, "start the SuperLink on this machine first ('fedmoe deploy "
                        "superlink start')")
    return subprocess.run([executable("flwr"), "supernode", "register", str(pub.resolve()),
                           "fedmoe"], cwd=layout.root, env=layout.env(), check=False).returncode


def cmd_submit(layout: Layout, opts: dict[str, Any]) -> int:
    """``flwr run . fedmoe --stream ARGS`` from the project root (replaces this process)."""
    _connection(layout, "start the SuperLink ('fedmoe deploy superlink start') or write it")
    argv = [executable("flwr"), "run", ".", "fedmoe", "--stream", *opts["args"]]
    sys.stdout.flush()
    if os.name == "nt":  # no exec there: wait and pass the exit status on
        return subprocess.run(argv, cwd=layout.root, env=layout.env(), check=False).returncode
    os.chdir(layout.root)
    os.execve(argv[0], argv, layout.env())
    return 0  # not reached


def cmd_stop_all(layout: Layout, _opts: dict[str, Any]) -> int:
    """Stop every process of this machine's pid files, together."""
    files = sorted(layout.pids.glob("*.pid")) if layout.pids.is_dir() else []
    procs.stop([(f, f.stem) for f in files])
    return 0


def cmd_status(layout: Layout, _opts: dict[str, Any]) -> int:
    """What this machine runs: the SuperLink, the SuperNodes and their workers."""
    superlink.status(layout)
    supernode.status(layout)
    return 0


COMMANDS: dict[str, Callable[[Layout, dict[str, Any]], int]] = {
    "certs": cmd_certs, "key": cmd_key, "register": cmd_register, "submit": cmd_submit,
    "status": cmd_status, "stop-all": cmd_stop_all,
    "superlink start": lambda lay, o: superlink.start(lay, o["insecure"], o["host"]) or 0,
    "superlink stop": lambda lay, o: superlink.stop(lay) or 0,
    "superlink status": lambda lay, o: superlink.status(lay) or 0,
    "supernode start": lambda lay, o: supernode.start(lay, o) or 0,
    "supernode stop": lambda lay, o: supernode.stop(lay, o["name"], o["all"]) or 0,
    "supernode status": lambda lay, o: supernode.status(lay) or 0,
}


def _command(argv: Sequence[str]) -> tuple[str, list[str]]:
    """The subcommand (``supernode start``) and its arguments; status is the default action."""
    first = argv[0]
    if first in ("superlink", "supernode"):
        action = argv[1] if len(argv) > 1 else "status"
        if f"{first} {action}" not in SPECS:
            raise DeployError(f"usage: fedmoe deploy {first} start|stop|status ...")
        return f"{first} {action}", list(argv[2:])
    if first not in SPECS:
        raise DeployError(f"unknown command {first!r}; one of: certs, key, register, "
                          f"superlink, supernode, submit, status, stop-all")
    return first, list(argv[1:])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fedmoe deploy``: 0 on success, 2 with a one-line error otherwise."""
    from fedmoe_flwr.tools import deploy

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print((deploy.__doc__ or "").strip())
        return 0 if argv else 2
    try:
        command, rest = _command(argv)
        opts = parse(SPECS[command], rest)
        layout = Layout.from_env(os.environ)
        return COMMANDS[command](layout, opts)
    except (DeployError, ConfigError, OSError) as err:
        print(f"deploy: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
