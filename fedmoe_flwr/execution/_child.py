"""The sandboxed child process: runs one answer under limits and reports to the parent.

:mod:`fedmoe_flwr.execution.sandbox` starts this file as
``python -I -S -B -X utf8 _child.py`` with a :mod:`marshal` payload on stdin.  It uses the
standard library only and is never imported by the package.

Order matters.  Everything that needs privileges or ``ctypes`` (resource
limits, namespaces, dropping to an unprivileged uid, ``prctl``, Landlock)
happens before the audit hook is installed and before a single line of the
answer runs.  The
answer and the tests then run in a worker thread, never in the main thread:
the main thread alone holds the line that tells the parent "the tests ran to
their end" (it contains a random nonce), and it prints that line only when the
worker's own frame is parked on the last line of :func:`_work`, which it can
reach only after both ``exec`` calls returned normally.  An answer that exits,
raises ``SystemExit``, kills its thread or calls ``os._exit`` never gets there.
"""

import _thread
import builtins
import errno
import marshal
import os
import posix
import resource
import signal
import sys
import types

CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
# Read-only system paths: shared libraries (extension modules load them), time zones, locales.
SYSTEM_READS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/share/zoneinfo",
                "/usr/share/locale", "/etc/localtime", "/etc/timezone", "/etc/os-release",
                "/etc/mime.types", "/etc/ld.so.cache")
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LL_EXECUTE, LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1, 2, 4, 8
LL_FS_V1 = (1 << 13) - 1  # execute ... make_sym: every right of Landlock ABI 1
LL_REFER, LL_TRUNCATE = 1 << 13, 1 << 14
LL_NET_TCP = 1 | 2  # bind, connect (ABI 4)
LL_SCOPE = 1 | 2  # abstract unix sockets, signals (ABI 6)
# Modules whose fresh (re)load would hand the answer an unpatched copy of a guarded function.
PROTECTED_IMPORTS = frozenset({"_posixsubprocess", "posix", "_signal", "signal", "_imp", "ctypes",
                               "_ctypes", "_gdbm", "_dbm", "readline"})
PROCESS_EVENTS = frozenset({"os.fork", "os.forkpty", "os.exec", "os.spawn", "os.posix_spawn",
                            "os.system", "os.startfile", "subprocess.Popen", "pty.spawn",
                            "webbrowser.open"})
INTROSPECTION_EVENTS = frozenset({"sys._current_frames", "sys._current_exceptions",
                                  "gc.get_objects", "gc.get_referrers", "gc.get_referents",
                                  "sys.settrace", "sys.setprofile", "resource.setrlimit",
                                  "resource.prlimit", "sqlite3.enable_load_extension",
                                  "sqlite3.load_extension"})
# event -> ((path index, dir_fd index or None), ...) of the paths it writes or reads
WRITE_EVENTS = {"os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.mkdir": ((0, 2),),
                "os.rename": ((0, 2), (1, 3)), "os.link": ((0, 2), (1, 3)),
                "os.symlink": ((1, 2),), "os.chmod": ((0, 2),), "os.chown": ((0, 3),),
                "os.utime": ((0, 3),), "os.truncate": ((0, None),), "os.setxattr": ((0, None),),
                "os.removexattr": ((0, None),), "os.chflags": ((0, None),),
                "os.lchflags": ((0, None),), "shutil.rmtree": ((0, None),)}
READ_EVENTS = {"os.listdir": ((0, None),), "os.scandir": ((0, None),),
               "os.listxattr": ((0, None),), "os.getxattr": ((0, None),)}
SQL_OK = 0
SQL_DENY = 1
SQL_READ, SQL_SELECT, SQL_ATTACH, SQL_DETACH, SQL_FUNCTION, SQL_RECURSIVE = 20, 21, 24, 25, 31, 33
SQL_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile",
                                  "edit"})


def main() -> None:
    """Read the payload, fence this process in, run the answer, report."""
    payload = marshal.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    status = payload["status_fd"]
    layers: list[str] = []
    _set_limits(payload["limits"])
    libc = _libc()
    if _unshare(libc, layers):
        _become_init(status, libc)
    _drop_privileges(payload["tmp"], payload["uids"], payload["limits"]["nproc"], layers)
    if libc is not None:
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
        _landlock(libc, payload["tmp"], layers)
    del libc
    _forget_ctypes()
    _guard_unaudited()
    os.umask(0o077)
    _write(status, "L " + " ".join(layers))
    if payload["mode"] == "sql":
        import json  # noqa: F401  (both loaded before the hook)
        import sqlite3  # noqa: F401

        sys.addaudithook(_make_policy(payload["tmp"]))
        _run_sql(payload, status)
    else:
        sys.addaudithook(_make_policy(payload["tmp"]))
        _run_python(payload, status)


def _write(fd: int, line: str) -> None:
    """Write one line to a pipe, all of it (a pipe write may be partial)."""
    data = (line.replace("\n", " ") + "\n").encode("utf-8", "replace")
    while data:
        data = data[os.write(fd, data):]


def _set_limits(limits: dict) -> None:
    """Core dumps off; CPU seconds, address space, file size and open files bounded."""
    cpu = int(limits["cpu"])
    for res, soft, hard in ((resource.RLIMIT_CORE, 0, 0),
                            (resource.RLIMIT_CPU, cpu, cpu + 1),
                            (resource.RLIMIT_AS, limits["memory"], limits["memory"]),
                            (resource.RLIMIT_FSIZE, limits["fsize"], limits["fsize"]),
                            (resource.RLIMIT_NOFILE, limits["nofile"], limits["nofile"])):
        _setrlimit(res, soft, hard)


def _setrlimit(res: int, soft: int, hard: int) -> None:
    """Lower a limit; where the current hard limit is lower still, keep that one."""
    _, cur_hard = resource.getrlimit(res)
    if cur_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, cur_hard), min(hard, cur_hard)
    resource.setrlimit(res, (soft, hard))


def _libc():
    """``libc`` through ctypes, or None where ctypes is unavailable."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        return None


def _unshare(libc, layers: list[str]) -> bool:
    """New network (and pid) namespaces where the kernel allows; True for a pid namespace.

    As root, network and pid namespaces need no user namespace; otherwise a
    new user namespace grants the right to create them.  A network namespace
    has only a loopback device, and it is down: nothing can be reached.
    """
    if libc is None:
        return False
    base = CLONE_NEWNET | (0 if os.geteuid() == 0 else CLONE_NEWUSER)
    for flags in (base | CLONE_NEWPID, base):
        if libc.unshare(flags) == 0:
            layers.extend(["userns", "netns"] if flags & CLONE_NEWUSER else ["netns"])
            if flags & CLONE_NEWPID:
                layers.append("pidns")
            return bool(flags & CLONE_NEWPID)
    return False


def _become_init(status: int, libc) -> None:
    """Fork into the new pid namespace; this process waits and mirrors the child's end.

    The child is pid 1 of its namespace: when it dies the kernel kills every
    process left in it, and no process outside it has a pid it could signal.
    """
    pid = os.fork()
    if pid == 0:
        return
    os.close(status)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _, wait_status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(wait_status) & 0xFF)


def _import_dirs() -> list[str]:
    """Directories the interpreter imports from (the standard library)."""
    dirs = {os.path.dirname(os.__file__)}
    dirs.update(p for p in sys.path if p and os.path.isdir(p))
    return sorted(dirs)


def _can_import_as(uid: int, dirs: list[str]) -> bool:
    """Whether ``uid`` could still read the standard library (tried with seteuid)."""
    try:
        os.setegid(uid)
        os.seteuid(uid)
        return all(os.access(d, os.R_OK | os.X_OK, effective_ids=True) for d in dirs)
    except OSError:
        return False
    finally:
        os.seteuid(0)
        os.setegid(0)


def _drop_privileges(tmp: str, uids: list[int], nproc: int, layers: list[str]) -> None:
    """As root, become an unused uid that owns only the temporary directory.

    Skipped (the process stays root) when that uid could not read the
    standard library, e.g. a Python installed under a 0700 ``/root``.  With an
    ordinary uid the file system's permissions and RLIMIT_NPROC (ignored for
    root) apply too.
    """
    if os.geteuid() != 0:
        return
    dirs = _import_dirs()
    for uid in uids:
        if not _can_import_as(uid, dirs):
            continue
        try:
            os.chown(tmp, uid, uid)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        except OSError:
            continue
        layers.append(f"uid={uid}")
        _setrlimit(resource.RLIMIT_NPROC, nproc, nproc)
        return
    layers.append("root")


def _readable_paths() -> list[str]:
    """What the answer may read besides its directory: the standard library, system files."""
    paths = [*_import_dirs(), os.path.join(sys.base_prefix, "lib"), *SYSTEM_READS, *DEVICES,
             sys.executable]
    return sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})


def _landlock(libc, tmp: str, layers: list[str]) -> None:
    """Kernel-enforced limits (Landlock, Linux >= 5.13), where the kernel has it.

    The process may then write only beneath ``tmp`` and read only there and in
    :func:`_readable_paths`, even as root and even from C code (sqlite's
    ATTACH); executes nothing (ABI 1); makes no TCP connection (ABI 4); and
    signals no process outside its own domain (ABI 6).  Irreversible, and
    inherited by every thread started later.
    """
    import ctypes

    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    abi = syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return
    fs = LL_FS_V1 | (LL_REFER if abi >= 2 else 0) | (LL_TRUNCATE if abi >= 3 else 0)

    class Ruleset(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class Beneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]

    attr = Ruleset(fs, LL_NET_TCP if abi >= 4 else 0, LL_SCOPE if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        return
    file_rights = LL_READ_FILE | LL_WRITE_FILE | (LL_TRUNCATE if abi >= 3 else 0)
    rules = [(tmp, fs), ("/dev/null", file_rights), ("/dev/full", file_rights)]
    rules += [(p, LL_READ_FILE | (LL_READ_DIR if os.path.isdir(p) else 0))
              for p in _readable_paths()]
    try:
        for path, allowed in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = Beneath(allowed & fs, fd)
                syscall(SYS_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0)
            finally:
                os.close(fd)
        if syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) == 0:
            layers.append(f"landlock{abi}")
    finally:
        os.close(ruleset)


def _forget_ctypes() -> None:
    """Drop ctypes from sys.modules: a fresh import must load a library, which is refused."""
    for name in [m for m in sys.modules if m == "ctypes" or m.startswith("ctypes.")]:
        del sys.modules[name]


def _refuse(*_args, **_kwargs):
    """Stand-in for a dangerous function that raises no audit event."""
    raise PermissionError(errno.EPERM, "sandbox: not allowed")


def _guard_unaudited() -> None:
    """Replace functions that act outside the sandbox without raising an audit event.

    ``_posixsubprocess.fork_exec`` starts processes (multiprocessing uses it
    directly), ``pidfd_send_signal`` signals any process, ``mkfifo``/``mknod``
    and ``chroot`` touch the file system.  A fresh load of these modules is
    refused by the audit hook (see :data:`PROTECTED_IMPORTS`).
    """
    import _posixsubprocess
    import posix

    _posixsubprocess.fork_exec = _refuse
    for module in (os, posix):
        for name in ("mkfifo", "mknod", "chroot", "pidfd_open"):
            if hasattr(module, name):
                setattr(module, name, _refuse)
    for module in (signal, sys.modules.get("_signal")):
        if module is not None and hasattr(module, "pidfd_send_signal"):
            module.pidfd_send_signal = _refuse


def _make_realpath():
    """``os.path.realpath`` from C functions captured now (at most 40 symlinks followed)."""
    lstat, readlink, getcwd, _OSError = posix.lstat, posix.readlink, posix.getcwd, OSError

    def real(path):
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        todo, done, hops, exists = path.split("/")[::-1], [], 0, True
        while todo:
            part = todo.pop()
            if part == "" or part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            done.append(part)
            if not exists:
                continue  # below a missing directory nothing is a symlink
            try:
                mode = lstat("/" + "/".join(done)).st_mode
            except _OSError:
                exists = False
                continue
            if mode & 0o170000 == 0o120000:
                hops += 1
                if hops > 40:
                    return None
                target = readlink("/" + "/".join(done))
                done.pop()
                if target.startswith("/"):
                    done.clear()
                todo.extend(target.split("/")[::-1])
        return "/" + "/".join(done)

    return real


def _make_checker(tmp: str, real):
    """``check(path, dir_fd, write)``: refuse writes outside ``tmp`` and most reads too."""
    _type, _str, _bytes, _int, _issubclass = type, str, bytes, int, issubclass
    _Exception, _OSError, _PermissionError = Exception, OSError, PermissionError
    readlink, fspath, fsenc, eacces = (posix.readlink, posix.fspath,
                                       sys.getfilesystemencoding(), errno.EACCES)
    write_roots = (real(tmp), "/dev/null", "/dev/full")
    read_roots = tuple({r for r in (real(p) for p in (tmp, *_readable_paths())) if r})

    def resolve(path, dir_fd):
        try:
            if _type(path) is not _str and _type(path) is not _bytes:
                path = fspath(path)  # PathLike objects: pathlib, os.DirEntry, ...
            if _issubclass(_type(path), _bytes):
                path = _bytes.decode(path, fsenc, "surrogateescape")
            path = _str.__str__(path)  # an exact str, even from a str subclass
        except _Exception:
            return None
        if "\0" in path:
            return None
        if _type(dir_fd) is _int and dir_fd >= 0 and not path.startswith("/"):
            try:
                path = readlink(f"/proc/self/fd/{dir_fd}") + "/" + path
            except _OSError:
                return None
        return real(path)

    def inside(path, roots):
        for root in roots:
            if path == root or path.startswith(root + "/"):
                return True
        return False

    def check(path, dir_fd, write):
        if _type(path) is _int or path is None:
            return  # an open file descriptor: opening it was checked
        where = resolve(path, dir_fd)
        if where is None:
            raise _PermissionError(eacces, "sandbox: unsupported path")
        if inside(where, write_roots):
            return
        if write:
            raise _PermissionError(eacces, "sandbox: writing outside the temporary directory "
                                   "is not allowed: " + where)
        if not inside(where, read_roots):
            raise _PermissionError(eacces, "sandbox: reading outside the temporary directory "
                                   "is not allowed: " + where)

    return check


def _make_handlers(check) -> dict:
    """Event name -> handler closure (see :func:`_make_policy`)."""
    _type, _str, _len, _PermissionError, _RuntimeError = (type, str, len, PermissionError,
                                                          RuntimeError)
    pid, getpgrp, eacces, write_flags = posix.getpid(), posix.getpgrp, errno.EACCES, WRITE_FLAGS
    protected = PROTECTED_IMPORTS

    def deny(why):
        raise _PermissionError(eacces, "sandbox: " + why)

    def paths(spots, write):
        def run(args):
            for path_at, fd_at in spots:
                if path_at < _len(args):
                    dir_fd = args[fd_at] if fd_at is not None and fd_at < _len(args) else None
                    check(args[path_at], dir_fd, write)
        return run

    def on_open(args):
        check(args[0], None, args[1] is None or (args[2] & write_flags) != 0)  # os.open: mode None

    def on_import(args):
        if args[0] in protected:
            deny("importing " + args[0] + " is not allowed")

    def on_kill(args):
        if args[0] != 0 and args[0] != pid and args[0] != getpgrp():
            deny("signalling other processes is not allowed")

    def on_socket(args):
        if args[1] != 1:  # AF_UNIX pairs (asyncio's self-pipe) are harmless; connect is refused
            deny("network access is not allowed")

    def on_sqlite(args):
        db = args[0]
        if _type(db) is _str and (db in ("", ":memory:") or db.startswith("file::memory:")):
            return
        if _type(db) is _str and db.startswith("file:"):
            deny("sqlite URIs are not allowed")
        check(db, None, True)

    def on_hook(args):
        raise _RuntimeError("sandbox: no other audit hooks")  # a RuntimeError: refused silently

    table = {"open": on_open, "import": on_import, "os.kill": on_kill, "os.killpg": on_kill,
             "socket.__new__": on_socket, "socket.gethostname": lambda args: None,
             "sqlite3.connect": on_sqlite, "sys.addaudithook": on_hook}
    table.update({name: lambda args: deny("starting processes is not allowed")
                  for name in PROCESS_EVENTS})
    table.update({name: lambda args: deny("this operation is not allowed")
                  for name in INTROSPECTION_EVENTS})
    table.update({name: paths(spots, True) for name, spots in WRITE_EVENTS.items()})
    table.update({name: paths(spots, False) for name, spots in READ_EVENTS.items()})
    return table


def _make_policy(tmp: str):
    """The audit hook: no processes, network, introspection or writes outside ``tmp``.

    Installed with :func:`sys.addaudithook`, it sees every audited operation
    of every thread and cannot be removed.  The answer can reach this
    module's globals (its frame's ``f_back`` is :func:`_work`'s) and patch
    any module, so the hook is built from closures over C functions and
    tables captured now: none of their code looks up a global or builtin name
    when it runs (a test checks).  C code that raises no audit event
    (sqlite's own file I/O, for example) is fenced by the other layers.
    """
    get = _make_handlers(_make_checker(tmp, _make_realpath())).get
    _PermissionError, eacces = PermissionError, errno.EACCES

    def hook(event, args):
        handler = get(event)
        if handler is not None:
            handler(args)
        elif event.startswith("ctypes.") or event.startswith("socket."):
            raise _PermissionError(eacces, "sandbox: " + event + " is not allowed")

    return hook


def _sql_setup_authorizer(action, arg1, arg2, db, trigger) -> int:
    """Setup statements: anything but ATTACH/DETACH (VACUUM INTO too) and extensions."""
    if action in (SQL_ATTACH, SQL_DETACH):
        return SQL_DENY
    if action == SQL_FUNCTION and (arg2 or "").lower() in SQL_DENIED_FUNCTIONS:
        return SQL_DENY
    return SQL_OK


def _sql_query_authorizer(action, arg1, arg2, db, trigger) -> int:
    """The answer's statement: reading only (SELECT, column reads, functions, CTEs)."""
    if action == SQL_FUNCTION:
        return SQL_DENY if (arg2 or "").lower() in SQL_DENIED_FUNCTIONS else SQL_OK
    return SQL_OK if action in (SQL_READ, SQL_SELECT, SQL_RECURSIVE) else SQL_DENY


def _plain(value):
    """A sqlite value as JSON: BLOBs become their UTF-8 text."""
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return value


def _run_sql(payload: dict, status: int) -> None:
    """Run the setup script, then the answer's one statement; send its rows as JSON."""
    import json
    import sqlite3

    cap = payload["cap"]
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.set_authorizer(_sql_setup_authorizer)
    try:
        conn.executescript(payload["setup"])
    except Exception as exc:  # sqlite3.Error, or a ValueError for NUL characters
        _write(status, f"D task setup failed: {exc}")
        os._exit(1)
    conn.set_authorizer(_sql_query_authorizer)
    try:
        cur = conn.execute(payload["query"])
        if cur.description is None:
            _write(status, "D the statement returns no rows (not a query)")
            os._exit(1)
        rows, size = [], 0
        for batch in iter(lambda: cur.fetchmany(256), []):
            for row in batch:
                rows.append([_plain(v) for v in row])
                size += len(json.dumps(rows[-1])) + 2
                if size > cap:  # stop keeping rows; a query that never ends still times out
                    for _ in cur:
                        pass
                    _write(status, f"D result too large (over {cap} bytes)")
                    os._exit(1)
    except Exception as exc:
        text = str(exc)
        if "not authorized" in text:
            text += " (only reading queries are allowed)"
        _write(status, f"D sqlite error: {text}")
        os._exit(1)
    result = json.dumps({"columns": len(cur.description), "rows": rows})
    _write(status, payload["nonce"] + " " + result)
    os._exit(0)


def _work(answer, tests, ns, restore, park, report, hand, run=exec):
    """The worker thread: the answer, then the tests, then park (the last line: see _run_python)."""
    hand(sys._getframe())
    stage = "answer"
    try:
        run(answer, ns)
        stage = "tests"
        restore(ns)
        run(tests, ns)
    except BaseException as exc:  # the answer may raise anything, SystemExit included
        report(exc, stage)
        return
    park()  # must stay the last line: the main thread checks the frame stands here


PARK_LINE = max(line for _, _, line in _work.__code__.co_lines() if line is not None)


def _compile(source: str, name: str, status: int):
    """Compile the answer or the tests; a syntax error is reported and ends the run."""
    try:
        return compile(source, f"<{name}>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" ({name} line {line})" if line else ""
        msg = getattr(exc, "msg", None) or str(exc)
        _write(status, f"D {type(exc).__name__}: {msg}{where}")
        os._exit(1)


def _quit(code=None):
    """``exit()``/``quit()``: ``site`` (not loaded: ``-S``) would define them."""
    raise SystemExit(code)


def _fresh_main() -> dict:
    """A new ``__main__`` module for the answer (pickle and dataclasses look it up)."""
    builtins.exit = builtins.quit = _quit
    module = types.ModuleType("__main__")
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    return module.__dict__


def _builtins_restorer():
    """Undo an answer's rebinding of builtins before the tests run."""
    saved = dict(builtins.__dict__)

    def restore(ns: dict) -> None:
        builtins.__dict__.update(saved)
        ns["__builtins__"] = builtins

    return restore


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # the answer may have replaced the streams with anything
            pass


def _locked():
    lock = _thread.allocate_lock()
    lock.acquire()
    return lock


def _harness(status: int, sources: dict, ns: dict, box: list, ready, gate, block):
    """The worker's callbacks: hand over its frame, park after the tests, report a failure."""
    def hand(frame) -> None:
        box.append(frame)
        ready.release()
        gate.acquire()  # wait until the main thread holds the frame

    def park() -> None:
        _flush()
        ready.release()
        block.acquire()  # forever: the main thread ends the process

    def report(exc: BaseException, stage: str) -> None:
        try:
            if isinstance(exc, MemoryError):
                ns.clear()  # free what the answer allocated before describing it
            box.append(_exit_status(exc))
            text = _describe(exc, stage, sources)
        except BaseException:
            text = "the answer raised an exception that cannot be described"
        try:
            _flush()
            _write(status, "D " + text)
        finally:
            ready.release()

    return hand, park, report


def _run_python(payload: dict, status: int) -> None:
    """Run answer + tests in a worker thread; send the nonce only if they ran to the end.

    Once the gate opens, this thread reads only its own local variables (no
    global, builtin or closure cell: a test checks the bytecode) holding C
    functions, locks and the worker's frame.  Whatever the answer patches
    (modules, builtins, this module's globals, the callbacks' cells) cannot
    run code here or change what it decides.
    """
    ok, write, leave, park_line, frame_type, int_type, len_, type_ = (
        (payload["nonce"] + " OK\n").encode(), os.write, os._exit, PARK_LINE, types.FrameType, int,
        len, type)
    unfinished = b"D the code or the tests did not run to their end\n"
    sources = {"answer": payload["code"], "tests": payload["tests"]}
    answer = _compile(sources["answer"], "answer", status)
    tests = _compile(sources["tests"], "tests", status)
    payload.clear()  # the nonce now lives only in ``ok``
    ns, restore = _fresh_main(), _builtins_restorer()
    ready, gate, block, box = _locked(), _locked(), _locked(), []
    hand, park, report = _harness(status, sources, ns, box, ready, gate, block)
    _thread.stack_size(16 << 20)  # the worker recurses deeply; the answer's threads need less
    _thread.start_new_thread(_work, (answer, tests, ns, restore, park, report, hand))
    _thread.stack_size(2 << 20)  # address space (RLIMIT_AS) for ~200 threads of the answer
    ready.acquire()
    frame = box[0] if box and type(box[0]) is frame_type else None
    gate.release()  # the answer runs from here on
    ready.acquire()
    if frame is not None and frame.f_lineno == park_line:
        while ok:
            ok = ok[write(status, ok):]
        leave(0)
    write(status, unfinished)
    code = box[1] if len_(box) > 1 and type_(box[1]) is int_type else 1  # the failure's status
    leave(code & 0xFF)


def _exit_status(exc: BaseException) -> int:
    """The status Python itself would exit with: SystemExit's code, else 1."""
    if isinstance(exc, SystemExit):
        if exc.code is None:
            return 0
        return exc.code & 0xFF if type(exc.code) is int else 1
    return 1


def _describe(exc: BaseException, stage: str, sources: dict) -> str:
    """One line for the parent: what went wrong and at which answer/test line."""
    lines = {"<answer>": None, "<tests>": None}
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in lines:
            lines[name] = tb.tb_lineno
        tb = tb.tb_next
    test_line = lines["<tests>"]
    test_text = ""
    if test_line:
        src = sources["tests"].splitlines()
        test_text = src[test_line - 1].strip()[:160] if test_line <= len(src) else ""
    if isinstance(exc, SystemExit):
        when = "during the tests" if stage == "tests" else "in the answer, before the tests ran"
        return f"exited early: SystemExit({exc.code!r}) {when}"
    msg = str(exc)[:300]
    if stage == "tests" and isinstance(exc, AssertionError) and lines["<answer>"] is None:
        return f"test failed: {test_text}" + (f" ({msg})" if msg else "")
    where = []
    if lines["<answer>"]:
        where.append(f"answer line {lines['<answer>']}")
    if test_line:
        where.append(f"test line {test_line}: {test_text}")
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return text + (f" ({', '.join(where)})" if where else "")


if __name__ == "__main__":
    main()
