"""Work the merge path must not wait for: checkpoint writes and gateway rebuilds.

At 7B shapes an expert checkpoint is 80 MB (safetensors, checksum, fsync) and a
``cat`` gateway of ten experts 800 MB: written on the loop's thread they would
cost more than the merge itself (``bench/server_cost.py``).  A
:class:`BackgroundWorker` runs such jobs on a thread of its own, keyed by what
they write: a job submitted while an older one for the same key still waits
replaces it (only the newest version of an adapter is worth writing).  Jobs
only read arrays that are never mutated (merges make new arrays), and every
file is still written atomically, so a crash leaves the previous checkpoint.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("fedmoe.server")


class BackgroundWorker:
    """One daemon thread running the newest job per key, in submission order.

    A job that raises is logged; the first such error is raised again by the
    next :meth:`flush` (the run's end waits there), so a failing disk is never
    silent.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._pending: dict[str, Callable[[], None]] = {}
        self._cv = threading.Condition()
        self._running = False
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=f"fedmoe-{name}", daemon=True)
        self._thread.start()

    def submit(self, key: str, job: Callable[[], None]) -> None:
        """Queue ``job``; it replaces a queued, not yet started job with the same key."""
        with self._cv:
            if self._closed:
                raise RuntimeError(f"the {self.name} worker is closed")
            self._pending.pop(key, None)  # re-inserted at the end: order is submission order
            self._pending[key] = job
            self._cv.notify_all()

    def pending(self) -> int:
        """Jobs queued or running (for the live view and tests)."""
        with self._cv:
            return len(self._pending) + int(self._running)

    def flush(self) -> None:
        """Wait until every queued job has run; re-raise the first job error, if any."""
        with self._cv:
            self._cv.wait_for(lambda: not self._pending and not self._running)
            error, self._error = self._error, None
        if error is not None:
            raise RuntimeError(f"a background {self.name} job failed: {error}") from error

    def close(self) -> None:
        """Run what is queued, then stop the thread."""
        try:
            self.flush()
        finally:
            with self._cv:
                self._closed = True
                self._cv.notify_all()
            self._thread.join()

    def _work(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return
                key = next(iter(self._pending))
                job = self._pending.pop(key)
                self._running = True
            try:
                job()
            except BaseException as err:  # noqa: BLE001 - kept and raised by flush()
                log.error("background %s job %s failed: %s", self.name, key, err)
                with self._cv:
                    self._error = self._error or err
            finally:
                with self._cv:
                    self._running = False
                    self._cv.notify_all()
