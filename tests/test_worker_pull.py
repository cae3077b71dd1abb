"""The warm worker gives up a task whose message never arrives (fast, no SuperNode).

flwr 1.41's SuperNode, when a run ends while one of its messages is arriving, logs "not
in RUNNING status, ignoring" but leaves the task it created pending; its arrays never
come.  Flower's own pull waits two hours.  The worker must give the task up within its
``--pull-timeout`` with an error that says why, so that it takes the next run's tasks.
"""

import time
from types import SimpleNamespace

import pytest
from flwr.proto.message_pb2 import ObjectTree  # pylint: disable=E0611

from fedmoe_flwr.node.pull import pull_task


class NeverArrives:
    """A SuperNode Runtime API whose task's message arrays are never available."""

    pulls = 0

    def PullTaskInput(self, _request):  # noqa: N802 - Flower's method names
        return SimpleNamespace(task_id=3, run=SimpleNamespace(run_id=7),
                               context=SimpleNamespace(node_id=1, run_id=7), fab=None)

    def PullMessages(self, _request):  # noqa: N802
        return SimpleNamespace(messages_list=[object()],
                               message_object_trees=[ObjectTree(object_id="ab" * 32)])

    def PullObject(self, _request):  # noqa: N802
        self.pulls += 1
        return SimpleNamespace(object_found=True, object_available=False, object_content=b"")

    def ConfirmMessageReceived(self, _request):  # noqa: N802
        raise AssertionError("nothing was received")


def test_a_message_that_never_arrives_is_given_up_within_the_pull_timeout(monkeypatch):
    import flwr.common.serde as serde

    for name in ("context_from_proto", "run_from_proto", "fab_from_proto"):
        monkeypatch.setattr(serde, name, lambda proto: proto)
    client = NeverArrives()
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"run 7: .* did not arrive within 1s "
                                           r"\(--pull-timeout\)"):
        pull_task(client, max_time=1.0)
    assert client.pulls > 3  # it retried while waiting (every 50 ms, then backing off)
    assert time.monotonic() - t0 < 30  # not Flower's two hours: the bound is the timeout


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _unavailable(_object_id):
    from flwr.supercore.inflatable.inflatable_utils import ObjectUnavailableError

    raise ObjectUnavailableError(_object_id)


def test_a_stalled_pull_asks_for_a_newer_task_only_after_the_stall_and_once_a_second():
    from flwr.supercore.inflatable.inflatable_utils import (
        ObjectPullError,
        ObjectUnavailableError,
    )

    from fedmoe_flwr.node.pull import StallGuard

    asked, clock = [], Clock()
    guard = StallGuard(_unavailable, lambda: asked.append(clock.now), stall_s=20, clock=clock)
    clock.now += 19.9
    with pytest.raises(ObjectUnavailableError):
        guard("a")
    assert asked == []  # not stalled yet: nobody is asked
    clock.now += 0.2
    for _ in range(3):
        with pytest.raises(ObjectUnavailableError):  # nothing newer: keep waiting
            guard("a")
    assert asked == [pytest.approx(120.1)]  # asked once, not on every retry of the same second
    clock.now += 1.0
    guard.newer = lambda: ("tok", "fab")
    with pytest.raises(ObjectPullError):
        guard("a")
    assert guard.task == ("tok", "fab")


def test_arrays_that_keep_arriving_are_never_given_up_for_a_newer_task():
    from flwr.supercore.inflatable.inflatable_utils import ObjectUnavailableError

    from fedmoe_flwr.node.pull import StallGuard

    clock, calls = Clock(), {"n": 0}

    def slow(object_id):  # every other call brings an array, 15 s apart
        calls["n"] += 1
        clock.now += 15
        if calls["n"] % 2:
            _unavailable(object_id)
        return b"x"

    guard = StallGuard(slow, lambda: ("tok", "fab"), stall_s=20, clock=clock)
    for _ in range(5):
        with pytest.raises(ObjectUnavailableError):
            guard("a")
        assert guard("a") == b"x"
    assert guard.task is None  # each retry comes 15 s after the last array: under the bound


def test_a_dead_runs_message_is_given_up_for_the_next_runs_task(monkeypatch):
    import flwr.common.serde as serde

    from fedmoe_flwr.node.pull import Superseded

    for name in ("context_from_proto", "run_from_proto", "fab_from_proto"):
        monkeypatch.setattr(serde, name, lambda proto: proto)
    client = NeverArrives()
    with pytest.raises(Superseded, match=r"run 7: no array .* for 0s and the SuperNode "
                                         r"offers a newer task") as raised:
        pull_task(client, max_time=60.0, newer=lambda: ("next-token", "fab"), stall_s=0.0)
    assert raised.value.task == ("next-token", "fab")
