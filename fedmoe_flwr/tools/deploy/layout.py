"""Where a machine's deployment state lives, and the environment of what it starts.

The layout is the one ``scripts/deploy.sh`` used, so a machine set up by the
shell script keeps working: ``$FEDMOE_DEPLOY`` (default ``.fedmoe/deploy``)
holds ``certs/``, ``keys/``, ``pids/``, ``logs/``, ``secrets/``, ``flwr-home/``
(the ``flwr`` CLI's connection ``fedmoe``) and ``superlink.db``.  Nothing is
created until a command writes: a refused command line leaves no trace.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedmoe_flwr.tools.deploy import validate

DEFAULT_PORT = 8000  # the SuperLink's HTTP API (SuperNodes and the flwr CLI)


@dataclass(frozen=True)
class Layout:
    """The state directory, the project root, and the settings taken from the environment."""

    root: Path  # the app: `flwr run .` runs here, and so does every process started
    deploy: Path
    port: int  # FEDMOE_SUPERLINK_PORT
    host: str | None  # FEDMOE_SUPERLINK_HOST: the SuperLink's bind address, if set
    force: bool  # FORCE=1: `certs` replaces an existing set

    @classmethod
    def from_env(cls, environ: Mapping[str, str], root: Path | None = None) -> Layout:
        """Read and check the ``FEDMOE_*`` variables (relative paths: against the root)."""
        root = (root or Path.cwd()).resolve()
        deploy = validate.path(environ.get("FEDMOE_DEPLOY") or ".fedmoe/deploy",
                               "FEDMOE_DEPLOY")
        port = validate.port(environ.get("FEDMOE_SUPERLINK_PORT") or str(DEFAULT_PORT),
                             "FEDMOE_SUPERLINK_PORT")
        raw_host = environ.get("FEDMOE_SUPERLINK_HOST", "")
        host = validate.host(raw_host, "FEDMOE_SUPERLINK_HOST") if raw_host else None
        if environ.get("FEDMOE_CACHE"):
            validate.path(environ["FEDMOE_CACHE"], "FEDMOE_CACHE")
        return cls(root, (root / deploy).resolve(), port, host,
                   validate.flag(environ.get("FORCE", ""), "FORCE"))

    @property
    def certs(self) -> Path:
        """The CA and the SuperLink's certificate."""
        return self.deploy / "certs"

    @property
    def keys(self) -> Path:
        """SuperNode key pairs (``NAME`` and ``NAME.pub``)."""
        return self.deploy / "keys"

    @property
    def pids(self) -> Path:
        """One JSON pid file per started process."""
        return self.deploy / "pids"

    @property
    def logs(self) -> Path:
        """One log per started process."""
        return self.deploy / "logs"

    @property
    def secrets(self) -> Path:
        """The warm workers' Runtime API secrets (directory 0700, files 0600)."""
        return self.deploy / "secrets"

    @property
    def flwr_home(self) -> Path:
        """``FLWR_HOME`` of the SuperLink and the flwr CLI (``config.toml``)."""
        return self.deploy / "flwr-home"

    @property
    def database(self) -> Path:
        """The SuperLink's state, with the registered SuperNode keys."""
        return self.deploy / "superlink.db"

    def pidfile(self, what: str) -> Path:
        """The pid file of ``superlink``, ``supernode-NAME`` or ``worker-NAME``."""
        return self.pids / f"{what}.pid"

    def log(self, what: str) -> Path:
        """The log file of ``superlink``, ``supernode-NAME`` or ``worker-NAME``."""
        return self.logs / f"{what}.log"

    def make_dirs(self) -> None:
        """Create the state directories (only once a command is about to write)."""
        for d in (self.certs, self.keys, self.pids, self.logs, self.flwr_home):
            d.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        """The environment of the SuperLink, SuperNodes, workers and ``flwr``."""
        return {**os.environ, "FLWR_HOME": str(self.flwr_home),
                "FLWR_DISABLE_UPDATE_CHECK": "1",
                "FEDMOE_CACHE": os.environ.get("FEDMOE_CACHE") or
                str(self.root / ".fedmoe" / "cache")}
