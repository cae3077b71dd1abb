"""`train.overlap` in a Flower simulation: each simulated node keeps training in a Ray actor of
its own while its update travels, whichever actor of Flower's pool delivers its messages.

Two nodes (python, and sql 2x slower) and more pool actors than one, so the pool really
spreads a node's messages over actors; the run ends on an event (`run.max-updates`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedmoe_flwr.events import Update, of_kind, read_events

ROOT = Path(__file__).resolve().parents[1]
FEDMOE = Path(sys.executable).parent / "fedmoe"
pytestmark = [pytest.mark.slow, pytest.mark.e2e]
UPDATES = 8


def test_overlap_in_a_simulation_trains_through_every_round_trip(tmp_path):
    env = {**os.environ, "FEDMOE_STATE": str(tmp_path / "state"), "SIM_ACTORS": "2"}
    config = (f"train.overlap=true run.duration=900 run.max-updates={UPDATES} "
              f"train.sync-interval=2 eval.every-s=0 run.name='ov' "
              f"run.output-dir='{tmp_path / 'out'}' run.specialties='python_expert,sql_expert' "
              f"sim.specialties='python_expert,sql_expert' "
              f"sim.data-paths='data/python.jsonl,data/sql.jsonl' sim.speed-factors='1,2'")
    proc = subprocess.run([str(FEDMOE), "run", "--nodes", "2", "--run-config", config],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    run = tmp_path / "out" / "ov"
    updates = list(of_kind(read_events(run / "metrics.jsonl"), Update))
    assert len(updates) >= UPDATES
    by_node: dict[str, list[Update]] = {}
    for u in updates:
        by_node.setdefault(u.node, []).append(u)
    assert sorted(u[0].specialty for u in by_node.values()) == ["python_expert", "sql_expert"]
    for ups in by_node.values():
        assert len(ups) >= 2, ups
        # the node's own actor kept training while each earlier update travelled: a
        # training thread that died with a message (or restarted cold) would show 0 here
        assert all(u.in_flight_seconds > 0 for u in ups[1:]), ups
        # what it trained in flight is part of what the reply reports, not added on top
        assert all(u.in_flight_seconds <= u.train_seconds + 0.5 for u in ups), ups
        assert all(u.train_seconds > 0 and u.steps > 0 for u in ups)
    summary = json.loads((run / "summary.json").read_text())
    for specialty in ("python_expert", "sql_expert"):
        final = summary["eval"]["final"][specialty][specialty]
        assert final < summary["eval"]["initial"][specialty][specialty]  # it learned
