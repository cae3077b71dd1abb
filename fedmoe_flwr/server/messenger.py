"""Messages in flight: push through the Grid, remember what each one was, pull replies.

Also the one place adapters are encoded for sending: a version's record is
built once per encoding and reused for every node that gets that version
(train and evaluate messages alike), so the weights are packed once and
Flower hashes their arrays once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from fedmoe_flwr.codec import decode, encode
from fedmoe_flwr.lora import b_part
from fedmoe_flwr.weights import Weights


@dataclass
class Flight:
    """A message pushed and not yet answered."""

    node_id: int
    kind: str  # "query" | "train" | "evaluate"
    sent_at: float
    adapter: str = ""  # train: the adapter sent; evaluate: the domain asked for
    base_version: int = 0
    tag: str = ""
    base_weights: Weights = field(default_factory=dict)  # what a train message sent
    bytes_out: int = 0  # a train message's adapter bytes on the wire


class Messenger:
    """Pushes messages with the run's TTL, tracks flights, counts bytes each way."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.flights: dict[str, Flight] = {}
        self.bytes_sent = 0
        self._records: dict[tuple[str, str], tuple[int, int, Any, Weights]] = {}

    def weights_record(self, name: str, version: int, weights: Weights,
                       compression: str = "none", b_only: bool = False) -> tuple[Any, Weights]:
        """The adapter as an ArrayRecord, and the weights a node decodes from it.

        With compression the server sends float16, and a node's delta is
        relative to exactly what it got; ``b_only`` (FFA-LoRA) sends the ``B``
        matrices alone.  Cached per (name, encoding, part) until the version or
        the arrays change.
        """
        wire = "none" if compression == "none" else "fp16"
        key = (name, wire + (":B" if b_only else ""))
        cached = self._records.get(key)
        if cached is None or cached[:2] != (version, id(weights)):
            part = b_part(weights) if b_only else weights
            record = encode(part, wire)
            sent = part if wire == "none" else decode(record)
            cached = self._records[key] = (version, id(weights), record, sent)
        return cached[2], cached[3]

    def message(self, content: RecordDict, node_id: int, kind: str) -> Message:
        """A message to one node with the run's TTL."""
        return Message(content, dst_node_id=node_id, message_type=kind, ttl=self.ttl)

    def push(self, grid: Grid, messages: list[tuple[Message, Flight]]) -> set[str]:
        """Push messages; return the ids of those the Grid accepted."""
        if not messages:
            return set()
        ids = list(grid.push_messages([m for m, _ in messages]))
        accepted = set()
        for msg_id, (msg, flight) in zip(ids, messages, strict=True):
            if msg_id:
                self.flights[msg_id] = flight
                accepted.add(msg_id)
                self.bytes_sent += sum(r.count_bytes() for r in msg.content.array_records.values())
        return accepted

    def pull(self, grid: Grid) -> list[tuple[Message, Flight]]:
        """Every reply available now, each with the flight it answers."""
        if not self.flights:
            return []
        out = []
        for reply in grid.pull_messages(list(self.flights)):
            flight = self.flights.pop(reply.metadata.reply_to_message_id, None)
            if flight is not None:
                out.append((reply, flight))
        return out

    def busy(self, kind: str | None = None) -> set[int]:
        """Nodes with a message in flight (of ``kind``, if given)."""
        return {f.node_id for f in self.flights.values() if kind is None or f.kind == kind}

    def drop(self, predicate: Callable[[Flight], bool]) -> list[Flight]:
        """Forget flights (a lost node's, or trains still out at the end)."""
        gone = [m for m, f in self.flights.items() if predicate(f)]
        return [self.flights.pop(m) for m in gone]

    def count(self, kind: str) -> int:
        """How many messages of ``kind`` are in flight."""
        return sum(f.kind == kind for f in self.flights.values())

    def any_of(self, ids: set[str]) -> bool:
        """Whether any of these message ids is still in flight."""
        return bool(ids & self.flights.keys())


def content_bytes(content: Any) -> int:
    """Bytes of a reply's arrays (what came over the wire)."""
    return int(sum(r.count_bytes() for r in content.array_records.values()))
