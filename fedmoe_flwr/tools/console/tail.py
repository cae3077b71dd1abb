"""Follow ``metrics.jsonl`` while the run writes it: only the bytes added since the last read.

A run flushes one whole line per event, but a reader can still catch the
last line half-written; the tail stops at the last newline and picks that
line up on the next read.  Each line is parsed by :func:`fedmoe_flwr.events.from_dict`,
the same parser :func:`~fedmoe_flwr.events.read_events` uses, so the console
sees exactly the typed events every other reader sees.
"""

from __future__ import annotations

import json
from pathlib import Path

from fedmoe_flwr.events import Event, from_dict

CHUNK_BYTES = 4 << 20  # read a long file in pieces: memory stays flat on a day-long run


class EventTail:
    """An offset into one ``metrics.jsonl``; each :meth:`read_new` returns the events after it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.damaged = 0  # complete lines that were not events (shown, never fatal)
        self._identity: tuple[int, int] | None = None

    def read_new(self) -> tuple[list[Event], bool]:
        """The new complete events, and whether the file was replaced or truncated.

        ``True`` (a reset) means everything read before no longer describes the
        file: the caller starts over with the events returned now, read from 0.
        """
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return [], False  # not written yet (or removed): keep what we showed
        identity = (st.st_dev, st.st_ino)
        reset = self._identity is not None and (identity != self._identity
                                                or st.st_size < self.offset)
        if reset:
            self.offset, self.damaged = 0, 0
        self._identity = identity
        events: list[Event] = []
        with self.path.open("rb") as fh:
            while self.offset < st.st_size:
                fh.seek(self.offset)
                data = fh.read(min(CHUNK_BYTES, st.st_size - self.offset))
                end = data.rfind(b"\n")
                if end < 0:
                    if len(data) < CHUNK_BYTES:
                        break  # only a half-written line so far: next time
                    end = len(data) - 1  # one absurd line longer than a chunk: drop it
                self.offset += end + 1
                events.extend(self._parse(data[:end]))
        return events, reset

    def _parse(self, block: bytes) -> list[Event]:
        out = []
        for raw in block.split(b"\n"):
            if not raw.strip():
                continue
            try:
                event = from_dict(json.loads(raw.decode("utf-8")))
            except (ValueError, TypeError, AttributeError):
                self.damaged += 1
                continue
            if event is not None:  # a kind this version does not know: skipped
                out.append(event)
        return out
