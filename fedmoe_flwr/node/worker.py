"""A warm ClientApp worker: one long-lived process runs a SuperNode's tasks one after another.

Stock Flower starts a new ``flwr-clientapp`` process for every message, which
imports torch and loads and quantizes the base model again each time.  A
SuperNode started with ``--isolation process`` leaves launching to an outside
executor instead; this module is that executor, but it runs each task in its
own process, so the ClientApp's module-level caches (the 4-bit model, the
tokenised data) survive from one message, and one run, to the next.

- Tasks: acquired from the SuperNode's Runtime API, then handled as
  ``flwr-clientapp`` handles one (pull message, context and FAB; install the
  FAB; load the ClientApp; call it; push the reply and the context), with
  Flower's own helpers, authenticated by the SuperNode's SuperExec secret.
- Stale code never runs: the first task pins the FAB hash (the app's code); a
  task whose FAB differs (Flower says it when the task is acquired) makes the
  worker exec a fresh interpreter, which runs that task first.
- Hangs and crashes: a watchdog answers a task that runs longer than
  ``--task-timeout`` with an error reply (the server drops the node and lets
  it rejoin) and exits; the supervisor restarts a worker that exited, so the
  SuperNode never wedges.

Usage (``scripts/deploy.sh`` does this next to every SuperNode)::

    python -m fedmoe_flwr.node.worker --runtime-api 127.0.0.1:9094 \
        --secret-file node.secret --supernode-pid PID [--task-timeout 3600]

The module imports nothing of the app before the first task, so the app's own
code is what the FAB brings.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

log = logging.getLogger("fedmoe.worker")
IDLE_POLL_S = 0.2  # between task acquisitions when the SuperNode has nothing
RESTART_BACKOFF_S = 2.0  # the supervisor's pause before restarting a worker that exited
TASK_STARTED_ENV = "FEDMOE_TASK_STARTED"  # wall time the current task was acquired


def _client(address: str, interceptors: list[Any]) -> Any:
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    return RuntimeHttpClient.from_server_address(
        server_address=address, insecure=True, root_certificates=None,
        interceptors=interceptors, retry_invoker=make_simple_http_retry_invoker())


class Worker:
    """Acquires the SuperNode's ClientApp tasks and runs them in this process."""

    def __init__(self, address: str, secret: bytes | None, task_timeout: float,
                 argv: list[str], pull_timeout: float = 120.0) -> None:
        from flwr.supercore.interceptors import (
            RuntimeVersionHttpInterceptor,
            SuperExecAuthHttpInterceptor,
        )

        self.address = address
        self.task_timeout = task_timeout
        self.pull_timeout = pull_timeout
        self.argv = argv  # what a fresh worker is started with
        self.fab_hash: str | None = None  # the app code this process has loaded
        self.restart_after = False
        self.current: tuple[Any, Any] = (None, None)  # the running task's message and context
        interceptors: list[Any] = [RuntimeVersionHttpInterceptor(component_name="SuperExec")]
        if secret:
            interceptors.append(SuperExecAuthHttpInterceptor(
                master_secret=secret, protected_methods=frozenset(
                    {"/flwr.proto.Runtime/AcquireTask"})))
        self.acquirer = _client(address, interceptors)
        self.tasks = 0
        self.pending: tuple[str, str] | None = None  # acquired while a stalled pull waited

    def acquire(self) -> tuple[str, str] | None:
        """``(token, fab hash)`` of a pending ClientApp task, or None."""
        from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=E0611
        from flwr.supercore.constant import TaskType

        res = self.acquirer.AcquireTask(AcquireTaskRequest(
            supported_task_types=[TaskType.CLIENT_APP]))
        return (res.token, res.task.fab_hash) if res.HasField("task") and res.token else None

    def serve(self, first_token: str | None = None) -> None:
        """Run tasks forever (the first one may come from the exec that replaced us)."""
        token = first_token
        while True:
            if token is None:
                task, self.pending = self.pending or self.acquire(), None
                if task is None:
                    time.sleep(IDLE_POLL_S)
                    continue
                token, fab_hash = task
                if self.fab_hash and fab_hash and fab_hash != self.fab_hash:
                    self.reexec(token, f"a task brings app {fab_hash[:12]}, this process runs "
                                       f"{self.fab_hash[:12]}")
            os.environ[TASK_STARTED_ENV] = repr(time.time())  # process-seconds start here
            self.run_task(token)
            token = None
            gc.collect()  # the task's message and reply go now, not at some later collection

    def run_task(self, token: str) -> None:
        """Handle one task as ``flwr-clientapp`` would, without leaving the process."""
        from flwr.app import Message
        from flwr.app.error import Error
        from flwr.common.constant import ErrorCode, SubStatus
        from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
        from flwr.supercore.interceptors import (
            RuntimeTokenHttpInterceptor,
            RuntimeVersionHttpInterceptor,
        )
        from flwr.supernode.runtime.run_clientapp import push_message, push_task_output

        from fedmoe_flwr.node.pull import Superseded, pull_task  # the worker's own, not the FAB's

        client = _client(self.address, [RuntimeVersionHttpInterceptor(
            component_name="flwr-clientapp"), RuntimeTokenHttpInterceptor(token)])
        heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
        heartbeat.start()
        message = context = reply = None
        status, details = SubStatus.FAILED, "ClientApp task failed"
        watchdog = threading.Timer(self.task_timeout, self._hung, args=(client,))
        watchdog.daemon = True
        watchdog.start()
        t0 = time.perf_counter()
        times: dict[str, float] = {}
        try:
            message, context, run, fab = pull_task(client, self.pull_timeout, self.acquire)
            self.current = (message, context)  # what the watchdog answers if the task hangs
            times["pull"] = time.perf_counter() - t0
            self._check_app(run, fab)
            reply = self._call_app(message, context, run, fab)
            times["app"] = time.perf_counter() - t0 - times["pull"]
            status, details = SubStatus.COMPLETED, ""
        except Superseded as err:  # a dead run's message: the newer task runs next
            log.warning("%s", err)
            details, self.pending = str(err), err.task
        except Exception as err:  # the same error reply flwr-clientapp sends
            log.error("ClientApp raised %s: %s", type(err).__name__, err, exc_info=err)
            details = f"{type(err)}:<'{err}'>"
            if message is not None:
                reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                                      reason=details), reply_to=message)
        finally:
            watchdog.cancel()
            if reply is not None and context is not None:
                push_message(client, reply, context)
            push_task_output(client=client, context=context, sub_status=status,
                             details=details)
            heartbeat.stop()
            client.close()
        self.tasks += 1
        self.current = (None, None)
        if self.restart_after:
            log.info("exiting so the supervisor starts a fresh worker for the new app")
            sys.exit(4)
        log.info("task %d (%s) in pid %d: %s, total %.2fs", self.tasks,
                 getattr(message, "metadata", None) and message.metadata.message_type,
                 os.getpid(), ", ".join(f"{k} {v:.2f}s" for k, v in times.items()),
                 time.perf_counter() - t0)

    def _check_app(self, run: Any, fab: Any) -> None:
        """Refuse a task whose app differs from the loaded one, and plan a fresh process.

        The task did not say its app up front (the input cannot be pulled twice), so it
        is refused clearly and the supervisor starts a worker for the new app.
        """
        if self.fab_hash is not None and fab.hash_str != self.fab_hash:
            self.restart_after = True
            raise RuntimeError(f"run {run.run_id} brings app {fab.hash_str[:12]} but this "
                               f"worker runs {self.fab_hash[:12]}; restarting the worker, "
                               f"the node can rejoin")

    def _call_app(self, message: Any, context: Any, run: Any, fab: Any) -> Any:
        from flwr.cli.install import install_from_fab
        from flwr.clientapp.utils import get_load_client_app_fn

        if self.fab_hash is None:
            install_from_fab(fab.content, skip_prompt=True)
            self.fab_hash = fab.hash_str
            log.info("worker pid %d loaded app %s (fab %s)", os.getpid(), run.fab_id,
                     fab.hash_str[:12])
        load = get_load_client_app_fn(default_app_ref="", app_path=None, multi_app=True)
        client_app = load(run.fab_id, run.fab_version, fab.hash_str)
        return client_app(message=message, context=context)

    def _hung(self, client: Any) -> None:
        """Watchdog: a task over the timeout gets an error reply, and the process exits."""
        from flwr.app import Message
        from flwr.app.error import Error
        from flwr.common.constant import ErrorCode, SubStatus
        from flwr.supernode.runtime.run_clientapp import push_message, push_task_output

        reason = f"ClientApp worker hung for over {self.task_timeout:.0f}s (--task-timeout)"
        log.error("%s: answering with an error and exiting so the supervisor starts a fresh "
                  "worker", reason)
        message, context = self.current
        try:
            if message is not None and context is not None:
                push_message(client, Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                                                   reason=reason), reply_to=message), context)
            push_task_output(client=client, context=context, sub_status=SubStatus.FAILED,
                             details=reason)
        finally:
            os._exit(3)

    def reexec(self, token: str, why: str) -> None:
        """Replace this process with a fresh worker that runs ``token`` first."""
        log.info("%s: starting a fresh worker process for it", why)
        os.execv(sys.executable, [sys.executable, "-m", "fedmoe_flwr.node.worker", "--child",
                                  *self.argv, "--first-token", token])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def supervise(argv: list[str], supernode_pid: int | None = None) -> int:
    """Run the worker as a child process; restart it whenever it exits, until stopped.

    With ``supernode_pid``, the supervisor and its worker end when that SuperNode
    does, so a worker never outlives the node it serves.
    """
    child: subprocess.Popen | None = None
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        child = subprocess.Popen([sys.executable, "-m", "fedmoe_flwr.node.worker", "--child",
                                  *argv])
        log.info("worker pid %d started (supervisor pid %d)", child.pid, os.getpid())
        while child.poll() is None:
            if supernode_pid and not _alive(supernode_pid):
                log.info("SuperNode pid %d is gone: stopping the worker", supernode_pid)
                stop(signal.SIGTERM, None)
                child.wait()
            time.sleep(1.0)
        code = child.returncode
        if not stopping:
            log.warning("worker pid %d exited with code %s; restarting in %.0fs", child.pid,
                        code, RESTART_BACKOFF_S)
            time.sleep(RESTART_BACKOFF_S)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: supervise a worker (default) or be one (``--child``)."""
    p = argparse.ArgumentParser(prog="python -m fedmoe_flwr.node.worker",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime-api", default="127.0.0.1:9094",
                   help="the SuperNode's Runtime API (flower-supernode --host/--port)")
    p.add_argument("--secret-file", default=None,
                   help="the SuperNode's --superexec-auth-secret-file")
    p.add_argument("--task-timeout", type=float, default=3600.0,
                   help="seconds a task may run before it is reported failed")
    p.add_argument("--pull-timeout", type=float, default=120.0,
                   help="seconds a task's message may take to arrive before it is given up")
    p.add_argument("--supernode-pid", type=int, default=None,
                   help="end when this SuperNode process ends")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--first-token", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stdout)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per idle poll otherwise
    base = ["--runtime-api", args.runtime_api, "--task-timeout", str(args.task_timeout),
            "--pull-timeout", str(args.pull_timeout)]
    if args.secret_file:
        base += ["--secret-file", args.secret_file]
    if not args.child:
        return supervise(base, args.supernode_pid)
    secret = None
    if args.secret_file:
        with open(args.secret_file, "rb") as fh:
            secret = fh.read()
    Worker(args.runtime_api, secret, args.task_timeout, base,
           args.pull_timeout).serve(args.first_token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
