"""Run untrusted code (an LLM's answer) in a separate, fenced-in process.

The calling process never executes the answer.  Each run starts a fresh
interpreter (``python -I -S -B``: isolated mode, standard library only) in its
own session and process group, in a fresh temporary working directory that is
deleted afterwards, with a scrubbed environment.  The child
(:mod:`fedmoe_flwr.execution._child`) fences itself in before the answer's
first line runs, in layers, each where this machine allows it:

* resource limits: CPU seconds (RLIMIT_CPU), address space (RLIMIT_AS), file
  size (RLIMIT_FSIZE), open files, no core dumps;
* new network and pid namespaces (``unshare``; as non-root inside a new user
  namespace): no network device is up, and no process outside is addressable;
* as root, an unused uid that owns only the temporary directory (then
  RLIMIT_NPROC applies too) -- skipped when that uid could not read the
  standard library, e.g. a Python installed under a 0700 ``/root``;
* Landlock: the kernel lets it write only beneath the temporary directory,
  read only there and in the standard library and system library paths, run
  no program, open no TCP connection and signal no process outside;
* an audit hook (:func:`sys.addaudithook`) that refuses new processes,
  sockets other than AF_UNIX pairs, ctypes, frame/GC introspection, signals to
  other processes, writes outside the temporary directory and most reads
  outside it and the standard library.

The parent enforces the wall clock (then kills the whole process group),
reads stdout/stderr with a byte cap (over it, the run is killed), and trusts a
result only if it carries a random nonce that the child's main thread sends
after the tests ran to their end (see ``_child.py``); the answer never sees the
nonce.  ``sandbox_layers()`` reports which layers this machine grants.
"""

from __future__ import annotations

import json
import marshal
import os
import pwd
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHILD = Path(__file__).resolve().with_name("_child.py")
PYTHON_FLAGS = ("-I", "-S", "-B", "-X", "utf8")
READ_CHUNK = 1 << 16
NPROC = 64  # tasks (threads too) of the sandbox uid, where one is used
SIGNAL_REASONS = {signal.SIGXCPU: "CPU time limit exceeded",
                  signal.SIGXFSZ: "file size limit exceeded",
                  signal.SIGSEGV: "crashed (SIGSEGV: memory limit or too deep recursion?)",
                  signal.SIGABRT: "aborted (SIGABRT)",
                  signal.SIGKILL: "killed by SIGKILL (CPU time limit, or out of memory)"}


@dataclass(frozen=True)
class Limits:
    """What one run may use.

    Attributes
    ----------
    seconds : float
        Wall-clock seconds from the start of the interpreter to its end; the
        CPU-time limit is this, rounded up, plus one.
    memory_mb : int
        Address-space limit (RLIMIT_AS) in MiB: a memory bomb gets MemoryError.
    output_bytes : int
        Cap on each of stdout, stderr and the result channel (SQL rows as
        JSON); a run that writes more is killed and fails.
    file_mb : int
        Largest file the answer may write (RLIMIT_FSIZE), in MiB.
    open_files : int
        Open file descriptors (RLIMIT_NOFILE).
    """

    seconds: float = 10.0
    memory_mb: int = 512
    output_bytes: int = 1 << 20
    file_mb: int = 16
    open_files: int = 64

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= 3600:
            raise ValueError(f"Limits.seconds must be in (0, 3600], got {self.seconds!r}")
        if not 64 <= self.memory_mb <= 1 << 20:
            raise ValueError(f"Limits.memory_mb must be in [64, 2**20], got {self.memory_mb!r}")
        if not 1024 <= self.output_bytes <= 1 << 30:
            raise ValueError(f"Limits.output_bytes must be in [1024, 2**30], "
                             f"got {self.output_bytes!r}")
        if not 1 <= self.file_mb <= 1 << 20 or not 16 <= self.open_files <= 1 << 16:
            raise ValueError(f"Limits.file_mb must be >= 1 and open_files >= 16, got "
                             f"{self.file_mb!r} and {self.open_files!r}")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class RunResult:
    """How a sandboxed run ended.

    Attributes
    ----------
    ok : bool
        Exit code 0 *and* the nonce line: the code (and the tests after it)
        ran to their end.
    returncode : int or None
        The process's exit status (negative: killed by that signal); None if
        it could not be started.
    stdout, stderr : str
        What it wrote, each cut at ``Limits.output_bytes`` (UTF-8, replaced).
    timed_out : bool
        Killed at the wall-clock limit.
    reason : str
        "ok", or a short human reason ("timeout after 2s", "test failed: ...").
    """

    ok: bool
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    reason: str


@dataclass(frozen=True)
class SqlResult:
    """The rows of a sandboxed SQL statement (``rows`` None when it failed: see ``run``)."""

    run: RunResult
    rows: list[list[Any]] | None = None
    columns: int = 0


@dataclass
class _Raw:
    """What came back from one child, before interpretation."""

    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    status: bytearray = field(default_factory=bytearray)
    timed_out: bool = False
    over: str = ""  # the stream that went over the output cap
    returncode: int | None = None
    error: str = ""  # the child could not be started
    nonce: str = ""


def run_python(code: str, limits: Limits = DEFAULT_LIMITS, *, tests: str = "") -> RunResult:
    """Run ``code`` (then ``tests``, in the same namespace) in the sandbox.

    Parameters
    ----------
    code : str
        Python source, run as the module ``__main__`` of a fresh interpreter
        (standard library only) with a temporary directory as working directory.
    limits : Limits
        Time, memory and output bounds.
    tests : str
        Python statements (typically ``assert`` lines) run after ``code`` in
        its namespace, with builtins restored first.

    Returns
    -------
    RunResult
        ``ok`` only if both ran to their end without an exception and the
        process exited 0: an early ``sys.exit(0)`` or ``os._exit(0)`` fails.
    """
    raw = _spawn({"mode": "python", "code": code, "tests": tests}, limits)
    ok, _ = _nonce_result(raw)
    return _result(raw, limits, ok)


def run_sql(setup: str, query: str, limits: Limits = DEFAULT_LIMITS) -> SqlResult:
    """Run ``setup`` in a fresh in-memory sqlite database, then one read-only ``query``.

    Both run inside the sandboxed child (a runaway ``WITH RECURSIVE`` times
    out there); ATTACH/DETACH, VACUUM INTO and extensions are refused, and
    the query may only read.

    Parameters
    ----------
    setup : str
        An SQL script (the task's tables and rows), trusted but sandboxed too.
    query : str
        One statement (the answer's first), which must return rows.
    limits : Limits
        Time, memory and output bounds; the rows' JSON must fit ``output_bytes``.

    Returns
    -------
    SqlResult
        The rows (lists of JSON values; BLOBs as UTF-8 text) and column count,
        or ``rows=None`` with the reason in ``run.reason``.
    """
    raw = _spawn({"mode": "sql", "setup": setup, "query": query, "cap": limits.output_bytes},
                 limits)
    ok, line = _nonce_result(raw)
    data = None
    if ok:
        try:
            data = json.loads(line)
        except ValueError:
            ok = False
    result = _result(raw, limits, ok)
    if data is None or not result.ok:
        return SqlResult(result)
    return SqlResult(result, data["rows"], data["columns"])


def sandbox_layers(limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """The isolation layers a child gets here, e.g. ``["netns", "pidns", "root", "landlock7"]``.

    Rlimits and the audit hook are always there and not listed; ``uid=N``
    means the child dropped to that unused uid, ``root`` that it stayed root,
    ``landlockN`` that Landlock ABI N applies.
    """
    return _layers(_spawn({"mode": "python", "code": "", "tests": ""}, limits).status)


def _layers(status: bytes) -> list[str]:
    first = bytes(status).split(b"\n", 1)[0].decode("utf-8", "replace")
    return first[2:].split() if first.startswith("L ") else []


def _env(tmp: str) -> dict[str, str]:
    """A scrubbed environment: nothing of the caller's, one malloc arena (RLIMIT_AS)."""
    return {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "MALLOC_ARENA_MAX": "1"}


def _candidate_uids() -> list[int]:
    """Unused uids a root child may drop to (none unless root): a high one, then a low one."""
    if os.geteuid() != 0:
        return []
    rng = secrets.SystemRandom()
    uids = []
    for low, high in ((1_000_000, 2_000_000_000), (42_000, 60_000)):
        for _ in range(20):
            uid = rng.randrange(low, high)
            try:
                pwd.getpwuid(uid)
            except KeyError:
                uids.append(uid)
                break
    return uids


def _spawn(job: dict[str, Any], limits: Limits) -> _Raw:
    """Start the child on ``job``, feed it, collect its output, and clean up after it."""
    tmp = tempfile.mkdtemp(prefix="fedmoe-exec-")
    read_fd, write_fd = os.pipe()
    nonce = secrets.token_hex(16)
    uids = _candidate_uids()
    payload = {**job, "nonce": nonce, "tmp": tmp, "status_fd": write_fd, "uids": uids,
               "limits": {"cpu": int(limits.seconds) + 1, "memory": limits.memory_mb << 20,
                          "fsize": limits.file_mb << 20, "nofile": limits.open_files,
                          "nproc": NPROC}}
    raw = _Raw(nonce=nonce)
    proc = None
    try:
        proc = subprocess.Popen([sys.executable, *PYTHON_FLAGS, str(CHILD)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=tmp, env=_env(tmp),
                                pass_fds=(write_fd,), start_new_session=True)
    except OSError as exc:
        raw.error = f"sandbox error: cannot start {sys.executable}: {exc}"
    finally:
        os.close(write_fd)
    try:
        if proc is not None:
            _exchange(proc, read_fd, marshal.dumps(payload), limits, raw)
    finally:
        if proc is not None:
            raw.returncode = _reap(proc, _dropped_uid(raw.status, uids))
        os.close(read_fd)
        _remove_tree(tmp)
    return raw


def _exchange(proc: subprocess.Popen, status_fd: int, data: bytes, limits: Limits,
              raw: _Raw) -> None:
    """Write the payload, read the three channels with caps, until EOF, exit or deadline."""
    deadline = time.monotonic() + limits.seconds
    sinks = {proc.stdout.fileno(): ("stdout", raw.out), proc.stderr.fileno(): ("stderr", raw.err),
             status_fd: ("status", raw.status)}
    # the status channel carries SQL rows the child already bounded by output_bytes, plus framing
    caps = {"stdout": limits.output_bytes, "stderr": limits.output_bytes,
            "status": 2 * limits.output_bytes + 4096}
    with selectors.DefaultSelector() as sel:
        for fd in sinks:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        stdin = proc.stdin.fileno()
        os.set_blocking(stdin, False)
        sel.register(stdin, selectors.EVENT_WRITE)
        pending = memoryview(data)
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raw.timed_out = True
                return
            events = sel.select(min(remaining, 0.25))
            for key, _ in events:
                if key.fd == stdin:
                    pending = _feed(sel, proc, pending)
                    continue
                name, buf = sinks[key.fd]
                if not _drain(sel, key.fd, buf, caps[name]):
                    raw.over = name
                    return
            if not events and _exited(proc.pid):
                for fd, (name, buf) in sinks.items():
                    if fd in sel.get_map() and not _drain(sel, fd, buf, caps[name]):
                        raw.over = name
                return
    if not _wait_exit(proc.pid, deadline):
        raw.timed_out = True


def _feed(sel: selectors.BaseSelector, proc: subprocess.Popen, pending: memoryview) -> memoryview:
    """Write what the pipe takes of the payload; close stdin when done (or the child left)."""
    try:
        pending = pending[os.write(proc.stdin.fileno(), pending):]
    except BlockingIOError:
        return pending
    except OSError:  # BrokenPipeError: the child died before reading it all
        pending = pending[len(pending):]
    if not pending:
        sel.unregister(proc.stdin.fileno())
        proc.stdin.close()
    return pending


def _drain(sel: selectors.BaseSelector, fd: int, buf: bytearray, cap: int) -> bool:
    """Read what is there into ``buf`` (EOF unregisters); False once over ``cap`` bytes."""
    while True:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return True
        except OSError:
            chunk = b""
        if not chunk:
            sel.unregister(fd)
            return True
        buf.extend(chunk)
        if len(buf) > cap:
            del buf[cap:]
            return False


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (so its pgid stays valid for killpg)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _wait_exit(pid: int, deadline: float) -> bool:
    """Wait (without reaping) until the child exits or the deadline passes."""
    delay = 0.001
    while not _exited(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def _dropped_uid(status: bytes, uids: list[int]) -> int | None:
    """The uid the child reported dropping to, if it is one of ours.

    The layers line is the child's first write, before the answer runs, so
    the answer cannot forge it; and only our own candidate uids are accepted.
    """
    for layer in _layers(status):
        if layer.startswith("uid=") and layer[4:].isdigit() and int(layer[4:]) in uids:
            return int(layer[4:])
    return None


def _reap(proc: subprocess.Popen, uid: int | None) -> int | None:
    """Kill the child's process group (and, by uid, anything that left it), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.kill()
    except OSError:
        pass
    if uid is not None:
        _kill_uid(uid)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return None
    finally:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _kill_uid(uid: int) -> None:
    """SIGKILL every process running as ``uid`` (an unused uid only the sandbox had)."""
    for _ in range(5):
        found = False
        try:
            names = os.listdir("/proc")
        except OSError:
            return
        for name in names:
            if not name.isdigit():
                continue
            try:
                text = Path(f"/proc/{name}/status").read_text()
                uids = next(line for line in text.splitlines() if line.startswith("Uid:"))
                if str(uid) in uids.split()[1:]:
                    os.kill(int(name), signal.SIGKILL)
                    found = True
            except (OSError, StopIteration):
                continue
        if not found:
            return
        time.sleep(0.01)


def _remove_tree(tmp: str) -> None:
    """Delete the run's directory, whatever the answer did inside it; never touch anything else.

    The answer may have made entries unreadable (chmod 0) or deleted the directory itself.
    Only paths inside ``tmp`` (and ``tmp``) are ever chmod-ed, and symlinks are removed,
    never followed.
    """
    def inside(path: str) -> bool:
        return path == tmp or path.startswith(tmp + os.sep)

    def retry(func, path, _exc_info) -> None:
        if not inside(path) or not os.path.lexists(path):
            return
        try:
            parent = os.path.dirname(path)
            if inside(parent) and not os.path.islink(parent):
                os.chmod(parent, 0o700)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, 0o700)
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
        except OSError:
            pass

    if os.path.lexists(tmp):
        shutil.rmtree(tmp, onerror=retry)


def _nonce_result(raw: _Raw) -> tuple[bool, str]:
    """(whether a line starting with the nonce came back, the rest of that line)."""
    nonce = raw.nonce.encode()
    for line in bytes(raw.status).split(b"\n"):
        if line.startswith(nonce + b" "):
            return True, line[len(nonce) + 1:].decode("utf-8", "replace")
    return False, ""


def _diagnosis(status: bytes) -> str:
    """The child's first ``D`` line: why the answer failed (informative, not trusted)."""
    for line in bytes(status).split(b"\n"):
        if line.startswith(b"D "):
            return line[2:].decode("utf-8", "replace").strip()[:500]
    return ""


def _result(raw: _Raw, limits: Limits, nonce_ok: bool) -> RunResult:
    """Turn a raw run into a RunResult with one human reason."""
    out = raw.out.decode("utf-8", "replace")
    err = raw.err.decode("utf-8", "replace")
    ok = nonce_ok and raw.returncode == 0 and not raw.timed_out and not raw.over
    if raw.error:
        reason = raw.error
    elif raw.timed_out:
        reason = f"timeout after {limits.seconds:g}s"
    elif raw.over:
        reason = f"output limit exceeded (over {limits.output_bytes} bytes on {raw.over})"
    elif ok:
        reason = "ok"
    else:
        reason = _failure_reason(raw, err)
    return RunResult(ok, raw.returncode, out, err, raw.timed_out, reason)


def _failure_reason(raw: _Raw, err: str) -> str:
    """Why a run that finished in time did not succeed."""
    diagnosis = _diagnosis(raw.status)
    if diagnosis:
        return diagnosis
    code = raw.returncode
    if code is None:
        return "sandbox error: the child could not be reaped"
    if code < 0:
        try:
            sig = signal.Signals(-code)
        except ValueError:
            return f"killed by signal {-code}"
        return SIGNAL_REASONS.get(sig, f"killed by {sig.name}")
    if code == 0:
        return "exited early (exit code 0) before the end of the code and tests"
    last = [line for line in err.strip().splitlines() if line.strip()][-1:] or [""]
    return f"exit code {code}" + (f": {last[0][:300]}" if last[0] else "")
