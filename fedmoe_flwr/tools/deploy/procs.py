"""Processes started in a session of their own and recorded so that only they are signalled.

A pid alone does not name a process: after a crash or a reboot the pid in a
pid file may belong to something else (pid 1, another user's shell, a new
process that got the number).  So each pid file is JSON holding the pid, the
process's create time and its command line as ``psutil`` reads them right
after the start (on Linux also its start in clock ticks since boot, which a
clock step cannot move), and a process is stopped only when all still match.
Anything else is a stale pid file: it is reported and removed, never
signalled.  Stopping ends the process and every process below it (children
first found recursively, terminated together, killed after a grace period),
with ``psutil`` on Linux, macOS and Windows alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from fedmoe_flwr.tools.deploy.files import write_replace

CREATE_TIME_TOLERANCE_S = 1.0  # wall-clock create times (macOS, Windows) are stored: exact
GRACE_S = 10.0  # between terminate and kill, as deploy.sh waited


def boot_start(pid: int) -> str | None:
    """Linux: ``BOOT_ID:TICKS``, when the process started in clock ticks since this boot.

    psutil's wall-clock create time on Linux is these ticks plus the boot time
    the kernel derives from the current clock, so a clock step (NTP, a VM's
    time sync) moves it by seconds; the ticks and the boot id never change for
    a process.  None elsewhere (their create times are stored, not derived).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name in () may hold spaces
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None  # field 22: starttime


@dataclass(frozen=True)
class PidRecord:
    """Who a pid file's process is: pid, create time, command line (and Linux boot start)."""

    pid: int
    create_time: float  # epoch seconds, as psutil reports it
    cmdline: tuple[str, ...]
    boot_start: str | None = None  # :func:`boot_start`; compared instead where recorded

    def to_json(self) -> str:
        """The pid file's content."""
        data: dict[str, Any] = {"pid": self.pid, "create_time": self.create_time,
                                "cmdline": list(self.cmdline)}
        if self.boot_start:
            data["boot_start"] = self.boot_start
        return json.dumps(data) + "\n"

    @classmethod
    def read(cls, path: Path) -> PidRecord | None:
        """The record in ``path``, or None when it is not a pid file this module wrote."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            pid, created, cmdline = data["pid"], data["create_time"], data["cmdline"]
            boot = data.get("boot_start")
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None
        if type(pid) is not int or pid < 1 or not isinstance(created, int | float) \
                or not isinstance(cmdline, list) or not cmdline \
                or not all(isinstance(a, str) for a in cmdline) \
                or not isinstance(boot, str | None):
            return None
        return cls(pid, float(created), tuple(cmdline), boot)


@dataclass(frozen=True)
class Lookup:
    """What a pid file names now: ``running`` (with its process), ``missing`` or ``stale``."""

    state: str
    record: PidRecord | None = None
    process: psutil.Process | None = None
    reason: str = ""


def session_flags() -> dict[str, Any]:
    """Popen arguments that start a process in a session / process group of its own."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    return {"start_new_session": True}


def spawn(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path,
          pidfile: Path) -> tuple[subprocess.Popen, PidRecord]:
    """Start ``argv`` detached (own session, stdin closed, output to ``log``), record it.

    The output goes to the log file, never to our stdout, so a caller that
    captures our output is not kept waiting by a process that runs on.  The log
    is appended to, under a line that says when and what started: a node started
    again after a crash keeps the lines that say why it crashed.
    """
    with log.open("ab") as out:
        out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting "
                  f"{Path(argv[0]).name} ===\n".encode())
        out.flush()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, **session_flags())
    try:  # Popen returns after the exec, so this is the new program's command line
        ps = psutil.Process(proc.pid)
        record = PidRecord(proc.pid, ps.create_time(), tuple(ps.cmdline()),
                           boot_start(proc.pid))
    except psutil.Error:  # it exited already: a record nothing will ever match
        record = PidRecord(proc.pid, 0.0, tuple(argv))
    write_replace(pidfile, record.to_json().encode(), 0o644)
    return proc, record


def verify(record: PidRecord) -> tuple[psutil.Process | None, str]:
    """The live process the record names, or None and why it is not that process."""
    try:
        proc = psutil.Process(record.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None, "it exited"
        if not _same_start(proc, record):
            return None, "that pid now belongs to a process started at another time"
        if tuple(proc.cmdline()) != record.cmdline:
            return None, "that pid now runs another command"
    except psutil.NoSuchProcess:
        return None, "it exited"
    except psutil.AccessDenied:
        return None, "that pid belongs to another user's process"
    return proc, ""


def _same_start(proc: psutil.Process, record: PidRecord) -> bool:
    """Whether the process started when the record says (boot ticks where recorded)."""
    if record.boot_start is not None:
        return boot_start(proc.pid) == record.boot_start
    return abs(proc.create_time() - record.create_time) <= CREATE_TIME_TOLERANCE_S


def lookup(pidfile: Path) -> Lookup:
    """Read a pid file and check that its process is still the one started."""
    if not pidfile.exists():
        return Lookup("missing")
    record = PidRecord.read(pidfile)
    if record is None:
        return Lookup("stale", reason="not a pid file of fedmoe deploy (pid, create time, "
                                      "command line)")
    proc, why = verify(record)
    if proc is None:
        return Lookup("stale", record, reason=why)
    return Lookup("running", record, proc)


def family(proc: psutil.Process) -> list[psutil.Process]:
    """A process and every process below it, the process first."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def end(procs: Sequence[psutil.Process], grace: float = GRACE_S) -> None:
    """Terminate processes together, wait up to ``grace`` seconds, then kill the rest."""
    for proc in procs:
        try:
            proc.terminate()  # psutil refuses to signal a pid that was reused meanwhile
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(procs), timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)


def stop(items: Sequence[tuple[Path, str]], quiet: bool = False) -> list[str]:
    """Stop the processes of pid files together and remove the files.

    Parameters
    ----------
    items : sequence of (Path, str)
        Pid files and how the messages name their processes.
    quiet : bool
        Print nothing (the messages are returned all the same).

    Returns
    -------
    list of str
        One line per pid file: stopped, not running, or a stale file removed.
    """
    lines, doomed, files = [], [], []
    for pidfile, what in items:
        found = lookup(pidfile)
        if found.state == "missing":
            lines.append(f"{what} is not running")
            continue
        files.append(pidfile)
        if found.state == "stale":
            pid = f"pid {found.record.pid}: " if found.record else ""
            lines.append(f"{what} is not running (stale pid file {pidfile.name} removed, "
                         f"{pid}{found.reason}; nothing signalled)")
        else:
            assert found.process is not None and found.record is not None
            doomed += family(found.process)
            lines.append(f"stopped {what} (pid {found.record.pid})")
    end(doomed)
    for pidfile in files:
        pidfile.unlink(missing_ok=True)
    if not quiet:
        for line in lines:
            print(line, flush=True)
    return lines
