"""An in-process ``Grid`` that answers messages with scripted node behaviour.

Each node is a function ``(message) -> (reply content or Error, delay)``; a
reply becomes visible ``delay`` pulls after it was pushed, so tests control
the arrival order (out of order, stale, lost) without threads or sleeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from flwr.app import Error, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

Behaviour = Callable[[Message], tuple[RecordDict | Error, int]]


class FakeGrid(Grid):
    def __init__(self, nodes: dict[int, Behaviour]) -> None:
        # Message() reads the run/node/task identity a Flower runtime would set.
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
        self.nodes = dict(nodes)
        self.tick = 0
        self.pending: list[tuple[int, int, Message]] = []  # (ready tick, seq, reply)
        self.pushed: list[Message] = []
        self._ids = itertools.count()

    def set_run(self, run):  # pragma: no cover - not used by the strategies
        self._run = run

    @property
    def run(self):  # pragma: no cover
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id=dst_node_id, message_type=message_type)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg_id = f"m{next(self._ids)}"
            msg.metadata.__dict__["_message_id"] = msg_id
            self.pushed.append(msg)
            ids.append(msg_id)
            behaviour = self.nodes.get(msg.metadata.dst_node_id)
            if behaviour is None:
                continue  # node gone: no reply ever
            result, delay = behaviour(msg)
            reply = (Message(result, reply_to=msg) if isinstance(result, Error)
                     else Message(result, reply_to=msg))
            self.pending.append((self.tick + delay, next(self._ids), reply))
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self.tick += 1
        wanted = set(message_ids)
        ready = sorted((p for p in self.pending if p[0] <= self.tick
                        and p[2].metadata.reply_to_message_id in wanted), key=lambda p: p[:2])
        self.pending = [p for p in self.pending if p not in ready]
        return [p[2] for p in ready]

    def send_and_receive(self, messages, *, timeout=None):  # pragma: no cover
        raise NotImplementedError
