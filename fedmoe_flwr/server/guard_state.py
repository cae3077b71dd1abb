"""The robust guard's memory on disk, so a resumed run judges updates as the old one did.

Without it a resumed run starts the guard empty: for its first ``robust.warmup``
accepted changes per expert only ``keep`` is checked, an old version sent back is no
replay any more, and a quarantined node is dispatched to again.  The server writes
``guard.safetensors`` into the run directory (atomically: a temp file and one
``os.replace``) every few seconds while the guard changes and once at the end; the
arrays are each expert's recent movement, and the safetensors metadata holds the
counters as JSON (change norms, reply and version digests, accepted changes, strikes).
``run.resume-from`` reads it back when it is there (a run written before it existed
resumes with an empty guard, as before).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fedmoe_flwr.config import ConfigError
from fedmoe_flwr.server.guard import UpdateGuard
from fedmoe_flwr.server.rundir import RunDirError
from fedmoe_flwr.weights import Weights

GUARD_FILE = "guard.safetensors"
SAVE_EVERY = 10.0  # seconds between two writes while the guard changes


def save_guard(root: Path, guard: UpdateGuard) -> Path:
    """Write the guard's snapshot into ``root`` atomically."""
    from safetensors.numpy import save_file

    meta, arrays = guard.snapshot()
    path = root / GUARD_FILE
    fd, tmp = tempfile.mkstemp(prefix=f".{GUARD_FILE}.", dir=root)
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v, np.float32) for k, v in arrays.items()}, tmp,
                  metadata={"guard": json.dumps(meta)})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_guard(root: Path) -> tuple[dict, Weights] | None:
    """The snapshot a run left in ``root`` (None when it left none); damage names the file."""
    from safetensors import SafetensorError, safe_open

    path = root / GUARD_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = json.loads((fh.metadata() or {})["guard"])
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise RunDirError(f"{path} is damaged ({type(err).__name__}: {err}); remove it to "
                          f"resume with an empty guard") from None
    if not isinstance(meta, dict) or not all(np.isfinite(v).all() for v in arrays.values()):
        raise RunDirError(f"{path} is damaged (counters not an object, or non-finite "
                          f"movement); remove it to resume with an empty guard")
    return meta, arrays


class GuardKeeper:
    """Keeps a run's guard on disk, and gives a resumed run the old run's guard back."""

    def __init__(self, guard: UpdateGuard, root: Path, clock: Callable[[], float]) -> None:
        self.guard, self.root, self.clock = guard, root, clock
        self.saved, self.saved_at = 0, -math.inf  # the guard's change count on disk, when

    def resume(self, meta: dict, arrays: Weights, quarantine: Callable[[int, str], None]) -> None:
        """Continue from the old run's snapshot; its quarantined nodes stay refused."""
        try:
            self.guard.restore(meta, arrays)
        except (TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"run config key 'run.resume-from': {GUARD_FILE} of the old run "
                              f"is damaged ({err}); remove it to resume with an empty "
                              f"guard") from None
        for node_id in self.guard.quarantined():
            quarantine(node_id, f"{self.guard.strikes[node_id]} updates refused by the "
                       f"robust checks (in the run this one resumes)")
        self.saved = -1  # this run's directory gets it at its first step

    def save(self, final: bool = False) -> None:
        """Write the guard when it changed: at most every ``SAVE_EVERY`` s, and at the end."""
        if self.guard.changes == self.saved:
            return
        if final or self.clock() - self.saved_at >= SAVE_EVERY:
            save_guard(self.root, self.guard)
            self.saved, self.saved_at = self.guard.changes, self.clock()
