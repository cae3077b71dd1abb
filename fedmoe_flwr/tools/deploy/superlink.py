"""``fedmoe deploy superlink start | stop | status`` and the flwr CLI's connection to it."""

from __future__ import annotations

import ssl
import time
import urllib.request
from pathlib import Path
from typing import Protocol

import tomli_w

from fedmoe_flwr.tools.deploy import procs
from fedmoe_flwr.tools.deploy.files import write_replace
from fedmoe_flwr.tools.deploy.layout import Layout
from fedmoe_flwr.tools.deploy.validate import DeployError, url_host
from fedmoe_flwr.tools.run import executable

HEALTH_WAIT_S = 120.0


class Polled(Protocol):
    """What the health wait needs of the started process: whether it has exited."""

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""


def write_connection(layout: Layout, address: str, insecure: bool) -> Path:
    """``FLWR_HOME/config.toml``: the default connection ``fedmoe`` to this SuperLink.

    Written with ``tomli_w``, so a deployment path with quotes or backslashes
    (Windows) is escaped instead of breaking the file.
    """
    conn: dict[str, object] = {"address": address}
    if insecure:
        conn["insecure"] = True
    else:
        conn["root-certificates"] = str(layout.certs / "ca.crt")
    path = layout.flwr_home / "config.toml"
    text = tomli_w.dumps({"superlink": {"default": "fedmoe", "fedmoe": conn}})
    write_replace(path, text.encode(), 0o644)
    return path


def _args(layout: Layout, host: str, insecure: bool) -> list[str]:
    args = [executable("flower-superlink"), "--host", host, "--port", str(layout.port),
            "--database", str(layout.database), "--isolation", "subprocess",
            "--disable-runtime-dependency-installation"]
    if insecure:
        return [*args, "--insecure"]
    for name in ("ca.crt", "server.pem", "server.key"):
        if not (layout.certs / name).exists():
            raise DeployError(f"{layout.certs / name} is missing; run 'fedmoe deploy certs "
                              f"HOST...' first")
    return [*args, "--ssl-ca-certfile", str(layout.certs / "ca.crt"),
            "--ssl-certfile", str(layout.certs / "server.pem"),
            "--ssl-keyfile", str(layout.certs / "server.key"), "--enable-supernode-auth"]


def health_url(layout: Layout, host: str, insecure: bool) -> str:
    """Where ``/health`` answers: the bind address, or 127.0.0.1 for a wildcard one."""
    probe = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"{'http' if insecure else 'https'}://{url_host(probe)}:{layout.port}/health"


def wait_healthy(url: str, ca: Path | None, proc: Polled, log: Path) -> None:
    """Poll ``url`` until it answers (TLS checked against our CA), the process ends, or 120 s.

    Proxies are bypassed: the SuperLink is on this machine.
    """
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if ca is not None:
        handlers.append(urllib.request.HTTPSHandler(
            context=ssl.create_default_context(cafile=str(ca))))
    opener = urllib.request.build_opener(*handlers)
    deadline = time.monotonic() + HEALTH_WAIT_S
    while time.monotonic() < deadline:
        try:
            with opener.open(url, timeout=2):
                return
        except OSError as err:  # urllib wraps TLS errors in URLError(reason=...)
            reason = getattr(err, "reason", err)
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise DeployError(f"the SuperLink answered on {url} with a certificate that "
                                  f"does not verify ({reason.verify_message}); make the "
                                  f"certificates for this host with 'fedmoe deploy "
                                  f"certs'") from None
            if proc.poll() is not None:
                raise DeployError(f"the SuperLink exited; see {log}") from None
            time.sleep(0.5)
    raise DeployError(f"the SuperLink did not answer {url} within {HEALTH_WAIT_S:.0f} s; "
                      f"see {log}")


def start(layout: Layout, insecure: bool, host: str | None) -> None:
    """Start the SuperLink (TLS + SuperNode authentication unless ``insecure``)."""
    # Without TLS nothing but this machine may connect, unless --host says otherwise.
    host = host or layout.host or ("127.0.0.1" if insecure else "0.0.0.0")
    pidfile = layout.pidfile("superlink")
    found = procs.lookup(pidfile)
    if found.state == "running":
        raise DeployError(f"the SuperLink is already running (pid {found.record.pid}); "
                          f"'fedmoe deploy superlink stop' first")
    args = _args(layout, host, insecure)
    layout.make_dirs()
    procs.stop([(pidfile, "SuperLink")], quiet=True)  # a stale pid file: removed
    if insecure:
        print("WARNING: insecure SuperLink: no TLS, no SuperNode authentication (single "
              "trusted machine only)", flush=True)
    log = layout.log("superlink")
    proc, record = procs.spawn(args, cwd=layout.root, env=layout.env(), log=log,
                               pidfile=pidfile)
    write_connection(layout, f"127.0.0.1:{layout.port}", insecure)
    try:
        wait_healthy(health_url(layout, host, insecure),
                     None if insecure else layout.certs / "ca.crt", proc, log)
    except DeployError:
        procs.stop([(pidfile, "SuperLink")], quiet=True)
        raise
    mode = "insecure" if insecure else "TLS + SuperNode auth"
    print(f"SuperLink pid {record.pid} on {host}:{layout.port} ({mode}); log {log}",
          flush=True)


def status(layout: Layout) -> None:
    """One line: running (pid, port) or not."""
    found = procs.lookup(layout.pidfile("superlink"))
    if found.state == "running":
        print(f"SuperLink running (pid {found.record.pid}, port {layout.port})")
    else:
        print("SuperLink not running")


def stop(layout: Layout) -> None:
    """Stop the SuperLink and every process it started (ServerApps)."""
    procs.stop([(layout.pidfile("superlink"), "SuperLink")])
