"""The events of a run, one dataclass per kind: what ``metrics.jsonl`` holds.

The server writes one JSON object per event (``{"event": kind, "time": ...,
<fields>}``), flushed line by line so the file can be followed live; the
plot, the console, the reports and every benchmark read it back through
:func:`read_events`, which returns these same classes.  A field is declared
once, here: a typo is an ``AttributeError`` on both sides instead of a key
that silently never matches.

``elapsed`` is seconds since training started (after registration and the
initial evaluation); ``time`` is the wall clock (Unix seconds).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

E = TypeVar("E", bound="Event")


@dataclass(frozen=True)
class Event:
    """Base of every event; ``kind`` is the ``"event"`` value in the file."""

    kind: ClassVar[str] = ""
    time: float = field(default_factory=lambda: round(time.time(), 3), kw_only=True)


@dataclass(frozen=True)
class Start(Event):
    """Training starts (after registration and the initial evaluation)."""

    kind = "start"
    strategy: str
    nodes: int


@dataclass(frozen=True)
class Resume(Event):
    """The run continues an earlier run's checkpoints."""

    kind = "resume"
    source: str
    versions: dict[str, int]


@dataclass(frozen=True)
class Register(Event):
    """A node joined: its specialty, the adapter it trains and its data size."""

    kind = "register"
    node: str
    specialty: str
    adapter: str
    num_train: int
    device: str


@dataclass(frozen=True)
class Refused(Event):
    """A node was refused at registration (never asked again in this run)."""

    kind = "refused"
    node: str
    reason: str


@dataclass(frozen=True)
class NewExpert(Event):
    """A node brought a specialty the run did not configure (``run.allow-new-specialties``)."""

    kind = "new-expert"
    specialty: str
    node: str
    experts: list[str]


@dataclass(frozen=True)
class Update(Event):
    """One accepted train reply: what the node did, what the merge did, what it cost."""

    kind = "update"
    elapsed: float
    specialty: str  # the node's domain
    adapter: str  # what it trained (the specialty's expert, or a shared adapter)
    node: str
    staleness: int
    mixing: float
    applied: bool  # merged now (False: buffered for a later merge)
    version: int  # the adapter's version after this update
    num_examples: int
    train_loss: float
    steps: int
    tokens: int
    train_seconds: float
    load_seconds: float
    base_version: int
    round_trip: float  # server: message pushed -> reply handled
    process_seconds: float  # node: process start-up paid by this message
    transfer_wait: float  # what neither side accounted for: queueing and transfer
    server_seconds: float  # server time from reply in to merged and published
    bytes_out: int
    bytes_in: int
    backlog: int  # checkpoint / gateway jobs queued
    epsilon: float | None = None  # privacy on: the node's epsilon so far
    process_id: int | None = None
    delta_norm: float | None = None  # privacy on: the delta's norm before clipping
    keep: float | None = None  # robust: share of the expert's norm the update leaves
    cos: float | None = None  # robust: cosine of its change with the expert's recent movement
    norm_ratio: float | None = None  # robust: its change's norm / median of recent ones
    in_flight_seconds: float = 0.0  # overlap: training while the previous update travelled


@dataclass(frozen=True)
class Version(Event):
    """An adapter got a new version (a merge was published)."""

    kind = "version"
    adapter: str
    version: int
    elapsed: float


@dataclass(frozen=True)
class Rejected(Event):
    """An update (or a merge) was refused; the adapter kept its weights."""

    kind = "rejected"
    adapter: str
    reason: str
    detail: str
    node: str | None = None


@dataclass(frozen=True)
class Late(Event):
    """A synchronous round had closed when this node's reply came."""

    kind = "late"
    node: str
    adapter: str
    elapsed: float


@dataclass(frozen=True)
class Eval(Event):
    """Held-out losses of every adapter on one domain."""

    kind = "eval"
    tag: str  # initial | periodic | final
    domain: str
    elapsed: float
    losses: dict[str, float]


@dataclass(frozen=True)
class NodeError(Event):
    """A node answered with an error (lost, crashed, TTL expired): dropped until it rejoins."""

    kind = "error"
    node: str
    message_kind: str
    code: int
    reason: str


@dataclass(frozen=True)
class Load(Event):
    """One window of the server's load: replies, pulls, busy share, background work."""

    kind = "load"
    elapsed: float
    window: float
    replies: int
    pulls: int
    max_batch: int
    busy: float
    background: int
    in_flight: int


@dataclass(frozen=True)
class Round(Event):
    """A synchronous round closed."""

    kind = "round"
    number: int
    scope: str
    seconds: float
    versions: dict[str, int]
    updates: dict[str, int]
    timed_out: list[str]


@dataclass(frozen=True)
class End(Event):
    """The run finished (summary written)."""

    kind = "end"
    updates: int


KINDS: dict[str, type[Event]] = {cls.kind: cls for cls in (
    Start, Resume, Register, Refused, NewExpert, Update, Version, Rejected, Late, Eval,
    NodeError, Load, Round, End)}


def _plain(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, set):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_line(event: Event) -> str:
    """One ``metrics.jsonl`` line (no newline)."""
    return json.dumps({"event": event.kind, **asdict(event)}, default=_plain)


def from_dict(obj: dict[str, Any]) -> Event | None:
    """The typed event of one parsed line; None for a kind this version does not know."""
    cls = KINDS.get(obj.get("event", ""))
    if cls is None:
        return None
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in obj.items() if k in names})


class EventLog:
    """Appends events to ``metrics.jsonl``, one whole flushed line each (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, event: Event) -> None:
        """Append one event (background workers may write too)."""
        line = to_line(event) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        """Close the file; later writes fail."""
        with self._lock:
            self._file.close()


def read_events(path: str | Path) -> list[Event]:
    """Every event of a ``metrics.jsonl``, typed; a half-written last line is skipped.

    A run still writing may have an incomplete last line; any other damaged
    line is an error naming the file and line.
    """
    p = Path(path)
    lines = p.read_bytes().split(b"\n")
    out: list[Event] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            event = from_dict(json.loads(raw.decode("utf-8")))
        except (ValueError, TypeError) as err:
            if number == len(lines):  # the line being written right now
                break
            raise ValueError(f"{p}:{number}: not an event ({type(err).__name__}: "
                             f"{str(err)[:120]})") from None
        if event is not None:
            out.append(event)
    return out


def of_kind(events: Iterable[Event], cls: type[E]) -> Iterator[E]:
    """The events of one kind, typed (``of_kind(events, Update)``)."""
    return (e for e in events if isinstance(e, cls))
