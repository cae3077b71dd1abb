"""Tables a person reads at the end of a run (rendered with rich, as plain text)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.table import Table


def _render(table: Table) -> str:
    buf = io.StringIO()
    Console(file=buf, width=140, force_terminal=False, color_system=None).print(table)
    return buf.getvalue().rstrip()


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def eval_table(initial: dict[str, dict[str, float]], final: dict[str, dict[str, float]]) -> str:
    """Domain x adapter held-out loss, final value with the initial one beside it."""
    adapters = sorted({a for row in final.values() for a in row}
                      | {a for row in initial.values() for a in row})
    table = Table(title="held-out loss (final / initial) - rows: eval domain, columns: adapter")
    table.add_column("domain")
    for a in adapters:
        table.add_column(a, justify="right")
    for domain in sorted(set(final) | set(initial)):
        cells = []
        for a in adapters:
            f = final.get(domain, {}).get(a)
            i = initial.get(domain, {}).get(a)
            best = f is not None and f == min(final.get(domain, {}).values())
            cells.append(f"{'*' if best else ''}{_fmt(f)} / {_fmt(i)}")
        table.add_row(domain, *cells)
    return _render(table)


def summary_table(summary: dict[str, Any]) -> str:
    """Per-expert versions, updates, nodes and last losses."""
    table = Table(title=f"experts after {summary['duration_s']:.0f}s with {summary['strategy']}"
                        f" ({summary['updates']} updates, rejected {summary['rejected'] or 0})")
    for col in ("expert", "version", "updates", "nodes", "examples", "last train loss",
                "held-out loss (own domain)"):
        table.add_column(col, justify="left" if col == "expert" else "right")
    for name, meta in summary["experts"].items():
        own = meta["eval_losses"].get(name)
        table.add_row(name, str(meta["version"]), str(meta["updates"]), str(len(meta["nodes"])),
                      str(meta["examples_seen"]), _fmt(meta["last_train_loss"]), _fmt(own))
    gw = summary.get("gateway")
    if gw:
        table.add_row(f"gateway ({gw['method']})", str(gw["version"]), "-", "-", "-", "-", "-")
    return _render(table)
