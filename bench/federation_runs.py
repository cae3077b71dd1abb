"""Shared by the benchmarks that compare whole federations: run one, read its results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fedmoe_flwr.events import Update, of_kind, read_events
from fedmoe_flwr.logs import setup_logging

setup_logging()  # a benchmark prints its own lines, not the libraries' bars and notes
ROOT = Path(__file__).resolve().parents[1]
SPECIALTIES = ("python_expert", "sql_expert", "docs_expert")
# The project's command in this environment (what scripts/run.sh and deploy.sh wrap): the
# benchmarks need no bash, so they run wherever the `fedmoe` command does.
FEDMOE = str(Path(sys.executable).with_name("fedmoe"))


def run_federation(work: Path, name: str, overrides: dict[str, Any], nodes: int = 4,
                   timeout: float = 1800) -> Path:
    """``fedmoe run`` with ``overrides`` (one ``--run-config`` each); the run directory."""
    work.mkdir(parents=True, exist_ok=True)
    values = {**overrides, "run.output-dir": str(work.resolve()), "run.name": name}
    cmd = [FEDMOE, "run"]
    for key, value in values.items():
        cmd += ["--run-config", f"{key}={json.dumps(value)}"]
    log_path = work / f"{name}.log"
    with log_path.open("w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "NUM_SUPERNODES": str(nodes)},
                              stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
    run_dir = work / name
    if proc.returncode != 0 or not (run_dir / "summary.json").exists():
        raise SystemExit(f"{name} failed (exit {proc.returncode}); see {log_path}")
    return run_dir


def own_domain_losses(summary: dict[str, Any]) -> dict[str, float]:
    """Each expert's final held-out loss on its own domain (the nodes' evaluation)."""
    final = summary["eval"]["final"]
    return {s: final[s][s] for s in SPECIALTIES if s in final and s in final[s]}


def update_events(run_dir: Path) -> list[Update]:
    """The run's ``update`` events (typed: ``fedmoe_flwr.events.Update``)."""
    return list(of_kind(read_events(run_dir / "metrics.jsonl"), Update))


def publish(name: str, lines: list[str]) -> None:
    """Write ``bench/results/<name>.md`` and print it."""
    (ROOT / "bench" / "results" / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
