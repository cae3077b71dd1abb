"""How the warm worker pulls a task's message from its SuperNode, and when it gives up.

flwr 1.41's SuperNode offers a task as soon as the head of its message arrived,
while the message's arrays still stream in from the SuperLink.  When the run
ends meanwhile (its ServerApp killed mid-round), the SuperNode logs "not in
RUNNING status, ignoring" but leaves the task pending with arrays that will
never come; Flower's own pull would wait two hours for them.  Two bounds end
that wait:

- ``max_time`` (the worker's ``--pull-timeout``): the whole message must arrive
  within it, whatever else happens.
- A stall with a newer task waiting: when no array has arrived for
  ``stall_s`` seconds *and* the SuperNode already offers another task (the
  next run's message), the message is given up at once and the newer task is
  handed back to run next.  A slow link alone never triggers it (no newer
  task waits while a live run sends a node its one message), and a dead run
  no longer costs the node the whole ``--pull-timeout`` of the run after it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

STALL_S = 20.0  # no array for this long, and a newer task waits: the message is given up
NewerTask = Callable[[], "tuple[str, str] | None"]


class Superseded(RuntimeError):
    """The message stalled while a newer task waited; ``task`` is that newer task."""

    def __init__(self, message: str, task: tuple[str, str]) -> None:
        super().__init__(message)
        self.task = task


class StallGuard:
    """Wraps Flower's pull function: notes progress, and gives a stalled pull up.

    Flower calls the wrapped function from several threads at once (one per
    array being pulled), so the bookkeeping is locked, and the SuperNode is
    asked for a newer task at most once a second.
    """

    def __init__(self, pull: Callable[[str], bytes], newer: NewerTask, stall_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pull, self.newer, self.stall_s, self.clock = pull, newer, stall_s, clock
        self.last_progress = clock()
        self.next_ask = 0.0
        self.task: tuple[str, str] | None = None  # the newer task, once one was found
        self._lock = threading.Lock()

    def __call__(self, object_id: str) -> bytes:
        """Flower's pull of one array; "unavailable" past a stall asks for a newer task."""
        from flwr.supercore.inflatable.inflatable_utils import (
            ObjectPullError,
            ObjectUnavailableError,
        )

        try:
            content = self.pull(object_id)
        except ObjectUnavailableError:
            with self._lock:
                if self.task is None and self._stalled():
                    self.task = self.newer()
                if self.task is not None:
                    raise ObjectPullError(object_id, "a newer task waits") from None
            raise
        with self._lock:
            self.last_progress = self.clock()
        return content

    def _stalled(self) -> bool:
        now = self.clock()
        if now - self.last_progress < self.stall_s or now < self.next_ask:
            return False
        self.next_ask = now + 1.0
        return True


def pull_task(client: Any, max_time: float = 120.0, newer: NewerTask | None = None,
              stall_s: float = STALL_S) -> tuple[Any, Any, Any, Any]:
    """The task's message, context, run and FAB, as ``flwr-clientapp`` pulls them.

    Differences from Flower's pull: missing arrays are retried after 50 ms (not
    a whole second, which would be paid on every message); the arrays must
    arrive within ``max_time``; and with ``newer`` (a function that acquires
    the SuperNode's next pending task, or returns None) a pull stalled for
    ``stall_s`` raises :class:`Superseded` with that task as soon as one waits.
    """
    from flwr.app import Message
    from flwr.common.serde import context_from_proto, fab_from_proto, run_from_proto
    from flwr.proto.node_pb2 import Node  # pylint: disable=E0611
    from flwr.proto.runtime_pb2 import (  # pylint: disable=E0611
        PullAppMessagesRequest,
        PullTaskInputRequest,
    )
    from flwr.supercore.task_identity import TaskIdentity

    res = client.PullTaskInput(PullTaskInputRequest())
    TaskIdentity.task_id, TaskIdentity.run_id = res.task_id, res.run.run_id
    TaskIdentity.node_id = res.context.node_id
    context, run, fab = context_from_proto(res.context), run_from_proto(res.run), \
        fab_from_proto(res.fab)
    messages = client.PullMessages(PullAppMessagesRequest())
    if not messages.messages_list:
        raise RuntimeError("the SuperNode offered a task without a message")
    node, tree = Node(node_id=context.node_id), messages.message_object_trees[0]
    message = _arrays(client, node, context.run_id, tree, max_time, newer, stall_s)
    message.metadata.__dict__["_message_id"] = tree.object_id  # as flwr-clientapp sets it
    assert isinstance(message, Message)
    return message, context, run, fab


def _arrays(client: Any, node: Any, run_id: int, tree: Any, max_time: float,
            newer: NewerTask | None, stall_s: float) -> Any:
    """Pull and inflate the message's object tree under both bounds."""
    from flwr.app import Message
    from flwr.supercore.inflatable.inflatable_protobuf_utils import (
        make_confirm_message_received_fn_protobuf,
        make_pull_object_fn_protobuf,
    )
    from flwr.supercore.inflatable.inflatable_utils import (
        ObjectPullError,
        pull_and_inflate_object_from_tree,
    )

    pull = make_pull_object_fn_protobuf(client.PullObject, node, run_id)
    guard = StallGuard(pull, newer or (lambda: None), stall_s)
    try:
        return pull_and_inflate_object_from_tree(
            tree, guard, make_confirm_message_received_fn_protobuf(
                client.ConfirmMessageReceived, node, run_id),
            return_type=Message, max_time=max_time, max_tries_per_object=None,
            initial_backoff=0.05, backoff_cap=1.0)
    except ObjectPullError as err:
        if guard.task is not None:
            raise Superseded(f"run {run_id}: no array of its message arrived for "
                             f"{stall_s:.0f}s and the SuperNode offers a newer task; its run "
                             f"has most likely ended, so the task is given up",
                             guard.task) from err
        raise RuntimeError(f"run {run_id}: the message's arrays did not arrive within "
                           f"{max_time:.0f}s (--pull-timeout); its run has most likely "
                           f"ended, so the task is given up") from err
