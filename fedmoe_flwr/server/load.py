"""How busy the server is: one line per window for people, one ``load`` event for tools.

A server that keeps up handles each pull's replies well within the poll
interval; one that falls behind shows it here first: more replies per pull,
a busy share near 1, and background checkpoint / gateway work piling up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fedmoe_flwr.events import EventLog, Load

log = logging.getLogger("fedmoe.server")

LOAD_WINDOW_S = 30.0


class LoadMeter:
    """Counts replies, pulls and server time since the last report."""

    def __init__(self, clock: Callable[[], float], window: float = LOAD_WINDOW_S) -> None:
        self.clock = clock
        self.window = window
        self._since = clock()
        self._replies = self._pulls = self._max_batch = 0
        self._busy = 0.0

    def pulled(self, replies: int, busy_seconds: float) -> None:
        """One pull: how many replies it brought and the seconds spent handling them."""
        self._pulls += 1
        self._replies += replies
        self._max_batch = max(self._max_batch, replies)
        self._busy += busy_seconds

    def report_if_due(self, events: EventLog, elapsed: float, background: int,
                      in_flight: int) -> None:
        """Log and record the window once it is ``window`` seconds old, then start a new one."""
        now = self.clock()
        span = now - self._since
        if span < self.window:
            return
        busy = self._busy / span if span > 0 else 0.0
        log.info("%6.1fs  server: %d replies in %.0fs, busy %.0f%%, at most %d per pull, "
                 "%d in flight, %d background job(s) queued", elapsed, self._replies, span,
                 100 * busy, self._max_batch, in_flight, background)
        events.write(Load(elapsed=round(elapsed, 3), window=round(span, 3),
                          replies=self._replies, pulls=self._pulls, max_batch=self._max_batch,
                          busy=round(busy, 4), background=background, in_flight=in_flight))
        self._since = now
        self._replies = self._pulls = self._max_batch = 0
        self._busy = 0.0
