"""Chart data that grows with the run but stays small enough to send every two seconds.

Every point remembers the sequence number of the event that made it, so a
page that has seen events up to ``n`` is sent only the points after ``n``.
A series thins its older half when it grows past its cap: a day-long run
draws as well as a minute-long one, at a bounded cost per poll.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

MAX_POINTS = 1500  # per series: a laptop-wide chart has fewer pixels than that


class Series:
    """Points ``[x, y, ...]`` in event order, each tagged with its event's sequence number."""

    def __init__(self, cap: int = MAX_POINTS) -> None:
        self.cap = cap
        self._seqs: list[int] = []
        self._points: list[list[Any]] = []

    def add(self, seq: int, point: list[Any]) -> None:
        """Append one point; past the cap, keep every other point of the older half."""
        self._seqs.append(seq)
        self._points.append(point)
        if len(self._points) > self.cap:
            half = len(self._points) // 2
            self._seqs = self._seqs[:half:2] + self._seqs[half:]
            self._points = self._points[:half:2] + self._points[half:]

    def after(self, seq: int) -> list[list[Any]]:
        """The points made by events after ``seq`` (all of them for ``seq = -1``)."""
        return self._points[bisect_right(self._seqs, seq):]

    def __len__(self) -> int:
        return len(self._points)


class SeriesSet:
    """Named series created on first use (one per expert, per adapter and domain, ...)."""

    def __init__(self) -> None:
        self._all: dict[str, Series] = {}

    def add(self, name: str, seq: int, point: list[Any]) -> None:
        """Append a point to series ``name``."""
        self._all.setdefault(name, Series()).add(seq, point)

    def after(self, seq: int) -> dict[str, list[list[Any]]]:
        """Every series' points after ``seq``; series with none are left out."""
        out = {}
        for name, series in self._all.items():
            points = series.after(seq)
            if points:
                out[name] = points
        return out
