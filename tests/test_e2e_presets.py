"""The synchronous strategy runs end to end in `flwr run` from its preset plus a short-run
override, which must not drop the preset (flwr keeps only the last --run-config).

FedAsync, the default, is the main end-to-end run (test_e2e_flwr_run.py). FedBuff and the
straggler presets go through the same server loop with another policy or other speed
factors; the fake-Grid tests cover the policies and tests/test_overrides.py the merging of
every preset with an override, so they need no separate simulation of ~90 s each."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FEDMOE = Path(sys.executable).parent / "fedmoe"
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


# One round of the preset's four nodes closes after four accepted updates: the run ends on
# that event (run.max-updates), not on a clock; run.duration only bounds a hang. Shorter
# local training than the preset's 10 s keeps it quick.
OVERRIDE = "run.max-updates=4 run.duration=900 train.sync-interval=4"


def test_the_fedavg_preset_runs_end_to_end_with_an_override(tmp_path):
    want = tomllib.loads((ROOT / "conf" / "fedavg.toml").read_text())
    env = {**os.environ, "FEDMOE_STATE": str(tmp_path / "state")}
    proc = subprocess.run(
        [str(FEDMOE), "run", "--run-config", "conf/fedavg.toml", "--run-config",
         f"{OVERRIDE} run.name='p' run.output-dir='{tmp_path}/out'"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    run = tmp_path / "out" / "p"
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "run_config.json").read_text())
    assert summary["strategy"] == want["strategy.name"] == "fedavg"
    overridden = {"run.max-updates": 4, "run.duration": 900, "train.sync-interval": 4}
    for key, value in want.items():  # the preset survived the second --run-config
        assert config[key] == overridden.get(key, value), key
    assert {k: config[k] for k in overridden} == overridden
    for specialty, meta in summary["experts"].items():
        assert meta["version"] >= 1, (specialty, meta)
    events = [json.loads(line)["event"] for line in (run / "metrics.jsonl").open()]
    assert "round" in events
