"""The console's one view of a run directory: the event fold plus the checkpoints' meta.json.

``RUN_DIR`` is followed on every refresh, so ``outputs/latest`` (a symlink
or ``latest.ref``) moves to a new run when one starts, and the page starts
over with it.  Checkpoints are read through :func:`fedmoe_flwr.server.rundir.follow`
(symlink or pointer file) and checked as every command checks them
(:func:`fedmoe_flwr.server.rundir.read_checkpoint`: meta, config, weights
against the checksum): a version directory changes only when the writer
re-saves it, so each is verified once, which keeps the console cheap while the
run trains.  A damaged checkpoint is shown as damaged (the ``damaged`` field,
one line naming the file), never as a fine version; one pruned or re-saved by
the writer between the link and the read is not damage: the next poll reads it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from fedmoe_flwr.contract import GATEWAY
from fedmoe_flwr.server.rundir import RunDirError, checkpoint_names, follow, read_checkpoint
from fedmoe_flwr.tools.console.state import RunState
from fedmoe_flwr.tools.console.tail import EventTail

META_CACHE = 256  # version directories whose meta.json is remembered


class RunSource:
    """Follows one ``RUN_DIR``; thread-safe (every request of every open page shares it)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.root: Path | None = None
        self.generation = 0  # bumped on every start-over: a page's cursor then stops matching
        self.state = RunState()
        self.tail: EventTail | None = None
        self._meta: dict[Path, tuple[int, tuple[dict[str, Any], None]]] = {}  # fine ones
        self._lock = threading.Lock()

    def view(self, cursor: str | None = None) -> dict[str, Any]:
        """Read what the run wrote since the last call; the page's data after ``cursor``.

        ``cursor`` is what the previous view returned; None, or one of another
        run or generation, gets everything (``reset: true``).
        """
        with self._lock:
            self._refresh()
            since = self._since(cursor)
            state = self.state
            now = time.time()
            ended = state.info["ended"]
            return {"cursor": f"{self._run_id()}:{state.seq}", "reset": since < 0,
                    "run": self._run_info(now), "nodes": [n.row(ended or now) for n in
                                                          sorted(state.nodes.values(),
                                                                 key=_node_order)],
                    "experts": self._experts(), "gateway": self._gateway(),
                    "load": state.load, "rejected": state.rejected_view(),
                    "evals": state.evals, "series": state.series.after(since)}

    def _refresh(self) -> None:
        try:
            root = follow(self.run_dir)
        except RunDirError:
            root = None  # a pointer being rewritten or damaged: show what we have
        if root is not None and root != self.root:
            self._start_over(root)
        if self.tail is None:
            return
        new, reset = self.tail.read_new()
        if reset:
            self.state, self.generation = RunState(), self.generation + 1
        for event in new:
            self.state.fold(event)

    def _start_over(self, root: Path) -> None:
        self.root, self.generation = root, self.generation + 1
        self.state, self.tail = RunState(), EventTail(root / "metrics.jsonl")

    def _run_id(self) -> str:
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:10]
        return f"{digest}.{self.generation}"

    def _since(self, cursor: str | None) -> int:
        run, _, seq = (cursor or "").rpartition(":")
        if run != self._run_id() or not seq.lstrip("-").isdigit():
            return -1
        return min(int(seq), self.state.seq)

    def _run_info(self, now: float) -> dict[str, Any]:
        info = dict(self.state.info)
        root = self.root
        finished = root is not None and (root / "summary.json").is_file()
        info.update(root=str(root) if root else None, name=root.name if root else None,
                    given=str(self.run_dir), server_time=now, finished=finished,
                    damaged_lines=self.tail.damaged if self.tail else 0,
                    status=("waiting" if root is None else "finished" if finished
                            or info["ended"] else "live"))
        return info

    def _meta_of(self, link: Path, kind: str = "expert") -> tuple[dict[str, Any],
                                                                   str | None] | None:
        """The checkpoint's meta and why it is damaged (None: it is fine); None: not now.

        A fine version is remembered until its ``meta.json`` changes (the writer
        re-saves a version to add its evaluation); a damaged one is read again on
        every poll, so a version caught while being re-saved is flagged once at most.
        """
        try:
            target = follow(link)
            stamp = (target / "meta.json").stat().st_mtime_ns if target else None
        except (RunDirError, OSError):
            return None  # a pointer being rewritten, a version pruned or re-saved: next poll
        if target is None or stamp is None or self.root is None:
            return None
        cached = self._meta.get(target)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            info = read_checkpoint(link.name, kind, target, self.root)
            info.weights()
        except FileNotFoundError:
            return None  # pruned or re-saved between follow and read: next poll
        except RunDirError as err:
            return ({}, str(err)) if target.is_dir() else None
        if len(self._meta) >= META_CACHE:
            self._meta.clear()
        self._meta[target] = (stamp, (info.meta, None))
        return info.meta, None

    def _experts(self) -> list[dict[str, Any]]:
        names = set(self.state.experts) - {GATEWAY}
        experts_dir = self.root / "experts" if self.root else None
        if experts_dir is not None and experts_dir.is_dir():
            names |= set(checkpoint_names(experts_dir))
        out = []
        for name in sorted(names):
            row = self.state.expert(name).row()
            meta, damaged = (self._meta_of(experts_dir / name) if experts_dir else None) \
                or ({}, None)
            row.update(checkpoint=meta.get("version"), examples=meta.get("examples_seen"),
                       damaged=damaged,
                       staleness_histogram=meta.get("staleness_histogram", {}),
                       nodes=meta.get("nodes", sorted(row["by_node"])))
            if meta.get("version") is not None:
                row["version"] = max(row["version"], int(meta["version"]))
            out.append(row)
        return out

    def _gateway(self) -> dict[str, Any] | None:
        read = self._meta_of(self.root / GATEWAY, GATEWAY) if self.root else None
        if read is None:
            return None
        meta, damaged = read
        keys = ("version", "method", "coefficients", "expert_versions", "eval_losses",
                "lora_r", "lora_alpha")
        return {**{k: meta.get(k) for k in keys}, "damaged": damaged}


def _node_order(node: Any) -> tuple[int, str, str]:
    """Nodes by specialty, then by id as a number where it is one (Flower ids are)."""
    return (0 if node.status == "registered" else 1, node.specialty,
            node.node.zfill(24))
