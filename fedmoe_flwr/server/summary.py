"""The end of a run: ``summary.json``, ``progress.png`` and the tables a person reads."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedmoe_flwr.events import End
from fedmoe_flwr.server.artifacts import RunDirectory
from fedmoe_flwr.server.evaluation import Evaluator
from fedmoe_flwr.server.federation import Federation
from fedmoe_flwr.server.nodes import NodeTable
from fedmoe_flwr.server.plot import plot_progress
from fedmoe_flwr.server.report import eval_table, summary_table

log = logging.getLogger("fedmoe.server")


@dataclass
class RunStats:
    """Counters of the whole run, for the summary and the benchmark."""

    updates: int = 0
    rejected: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    discarded: int = 0  # updates that arrived after run.max-updates was reached
    late: int = 0  # synchronous rounds: replies that arrived after their round closed
    examples_capped: int = 0  # updates claiming more examples than the node registered
    bytes_received: int = 0
    step_seconds: list[float] = field(default_factory=list)  # server time per merged update
    update_bytes_out: int = 0  # train messages of merged updates (weights sent)
    update_bytes_in: int = 0  # their replies (weights or compressed deltas)

    def step_ms(self) -> dict[str, float]:
        """Percentiles of the server's time per update (reply in -> merged and published)."""
        if not self.step_seconds:
            return {}
        ms = np.asarray(self.step_seconds) * 1000
        return {"p50": round(float(np.percentile(ms, 50)), 2),
                "p95": round(float(np.percentile(ms, 95)), 2), "max": round(float(ms.max()), 2)}


@dataclass(frozen=True)
class RunTotals:
    """The run as a whole: its strategy, length, traffic and what it counted."""

    strategy: str
    duration: float
    stats: RunStats
    bytes_sent: int
    compression: str = "none"
    privacy: dict[str, Any] | None = None


def write_summary(run_dir: RunDirectory, totals: RunTotals, federation: Federation,
                  evaluator: Evaluator, nodes: NodeTable, draw_plot: bool = True) -> dict:
    """Write ``summary.json``, draw ``progress.png`` and log the tables."""
    summary = _summary(totals, federation, evaluator, nodes)
    run_dir.write_json("summary.json", summary)
    run_dir.events.write(End(updates=totals.stats.updates))
    try:
        if draw_plot:
            plot_progress(run_dir.root / "metrics.jsonl", run_dir.root / "progress.png")
    except Exception as err:  # a plot must never fail a finished run
        log.warning("could not draw progress.png: %s", err)
    log.info("\n%s", summary_table(summary))
    log.info("\n%s", eval_table(evaluator.initial, evaluator.matrix))
    return summary


def _summary(totals: RunTotals, fed: Federation, evaluator: Evaluator,
             nodes: NodeTable) -> dict[str, Any]:
    stats = totals.stats
    summary = {
        "strategy": totals.strategy,
        "duration_s": round(totals.duration, 3),
        "updates": stats.updates,
        "discarded_after_cap": stats.discarded,
        "late_dropped": stats.late,
        "examples_capped": stats.examples_capped,
        "rejected": dict(stats.rejected),
        "errors": {str(k): v for k, v in stats.errors.items()},
        "bytes_sent": totals.bytes_sent,
        "bytes_received": stats.bytes_received,
        "compression": totals.compression,
        "bytes_per_update": {  # train traffic only: evaluation messages are not updates
            "sent": round(stats.update_bytes_out / max(len(stats.step_seconds), 1)),
            "received": round(stats.update_bytes_in / max(len(stats.step_seconds), 1))},
        "server_step_ms": stats.step_ms(),
        "experts": {s: e.meta() for s, e in sorted(fed.experts.items())},
        "gateway": fed.gateway.meta() if fed.gateway else None,
        "eval": {"initial": evaluator.initial, "final": evaluator.matrix},
        "nodes": {str(n.node_id): n.specialty for n in nodes.registered.values()},
        "refused": {str(n): reason for n, reason in nodes.refused.items()},
    }
    if totals.privacy is not None:
        summary["privacy"] = totals.privacy
    return summary
