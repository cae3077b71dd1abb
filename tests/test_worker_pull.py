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

from fedmoe_flwr.node.worker import pull_task


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
