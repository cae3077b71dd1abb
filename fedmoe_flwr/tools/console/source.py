"""The console's one view of a run directory: the event fold plus the checkpoints' meta.json.

``RUN_DIR`` is followed on every refresh, so ``outputs/latest`` (a symlink
or ``latest.ref``) moves to a new run when one starts, and the page starts
over with it.  Checkpoints are read through :func:`fedmoe_flwr.server.rundir.follow`
(symlink or pointer file) and only their small ``meta.json``: a version
directory never changes once published, so each is read once.  Nothing here
verifies weights: the console must stay cheap while the run trains.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from fedmoe_flwr.contract import GATEWAY
from fedmoe_flwr.server.rundir import RunDirError, checkpoint_names, follow
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
        self._meta: dict[Path, dict[str, Any]] = {}
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

    def _meta_of(self, link: Path) -> dict[str, Any] | None:
        try:
            target = follow(link)
        except RunDirError:
            return None
        if target is None:
            return None
        if target not in self._meta:
            try:
                meta = json.loads((target / "meta.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None  # pruned between follow and read, or half-copied: next poll
            if len(self._meta) >= META_CACHE:
                self._meta.clear()
            self._meta[target] = meta if isinstance(meta, dict) else {}
        return self._meta[target]

    def _experts(self) -> list[dict[str, Any]]:
        names = set(self.state.experts) - {GATEWAY}
        experts_dir = self.root / "experts" if self.root else None
        if experts_dir is not None and experts_dir.is_dir():
            names |= set(checkpoint_names(experts_dir))
        out = []
        for name in sorted(names):
            row = self.state.expert(name).row()
            meta = self._meta_of(experts_dir / name) if experts_dir else None
            meta = meta or {}
            row.update(checkpoint=meta.get("version"), examples=meta.get("examples_seen"),
                       staleness_histogram=meta.get("staleness_histogram", {}),
                       nodes=meta.get("nodes", sorted(row["by_node"])))
            if meta.get("version") is not None:
                row["version"] = max(row["version"], int(meta["version"]))
            out.append(row)
        return out

    def _gateway(self) -> dict[str, Any] | None:
        meta = self._meta_of(self.root / GATEWAY) if self.root else None
        if meta is None:
            return None
        keys = ("version", "method", "coefficients", "expert_versions", "eval_losses",
                "lora_r", "lora_alpha")
        return {k: meta.get(k) for k in keys}


def _node_order(node: Any) -> tuple[int, str, str]:
    """Nodes by specialty, then by id as a number where it is one (Flower ids are)."""
    return (0 if node.status == "registered" else 1, node.specialty,
            node.node.zfill(24))
