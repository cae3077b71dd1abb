"""Allocator settings for the server process.

Each merge makes a new copy of an expert (merges never mutate, so a failed
one leaves nothing half-written): at 7B shapes that is 80 MB in a few hundred
arrays of up to 0.6 MB.  glibc gives such arrays back to the kernel as soon as
they are freed (its trim threshold adapts to twice the largest freed chunk),
so the next merge page-faults every page again and runs at half the speed of
an in-place axpy over the same bytes.  Keeping freed memory in the heap (up to
a bound) makes the merge run at memory speed (``bench/server_cost.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("fedmoe.server")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of freed heap for the next merge
MMAP_THRESHOLD = 32 << 20  # glibc's maximum: arrays below 32 MiB come from the heap


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for repeated large merges; False where that does not apply."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = (libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
              and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)
    except (OSError, AttributeError):  # not glibc (e.g. musl): its defaults stay
        return False
    if not ok:
        log.debug("mallopt refused the server's allocator settings")
    return ok
