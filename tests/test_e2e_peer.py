"""The peer baseline end to end: `strategy.name = "flower-fedavg"` trains one global adapter on
every node in `flwr run`, and the run directory holds it as a PEFT adapter per round.

The run ends on an event: three nodes, `run.max-updates=6`, so it stops once the second
round has closed (`run.duration` only bounds a hang)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fedmoe_flwr.server.artifacts import load_adapter_weights

ROOT = Path(__file__).resolve().parents[1]
FEDMOE = Path(sys.executable).parent / "fedmoe"
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_flower_fedavg_trains_one_global_adapter(tmp_path):
    env = {**os.environ, "FEDMOE_STATE": str(tmp_path / "state"), "NUM_SUPERNODES": "3"}
    proc = subprocess.run(
        [str(FEDMOE), "run", "--run-config",
         f"strategy.name='flower-fedavg' run.duration=900 run.max-updates=6 "
         f"train.sync-interval=3 "
         f"run.keep-versions=0 run.name='peer' run.output-dir='{tmp_path}/out'"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    run = tmp_path / "out" / "peer"
    summary = json.loads((run / "summary.json").read_text())
    rounds = summary["experts"]["global"]["version"]
    assert summary["strategy"] == "flower-fedavg" and rounds >= 2, summary
    assert sorted(summary["nodes"].values()) == ["docs_expert", "python_expert", "sql_expert"]
    assert list(summary["experts"]) == ["global"] and summary["gateway"] is None
    config = json.loads((run / "experts" / "global" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8
    first = load_adapter_weights(run / "experts" / ".versions" / "global-v000000")
    last = load_adapter_weights(run / "experts" / "global")
    assert first.keys() == last.keys()
    assert any(not np.allclose(first[k], last[k]) for k in first)  # the rounds trained it
    versions = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert [e["version"] for e in versions if e["event"] == "version"] == \
        list(range(1, rounds + 1))
