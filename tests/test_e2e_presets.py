"""The synchronous strategy runs end to end in `flwr run` from its preset plus a short-run
override, which must not drop the preset (flwr keeps only the last --run-config).

FedAsync, the default, is the main end-to-end run (test_e2e_flwr_run.py). FedBuff and the
straggler presets go through the same server loop with another policy or other speed
factors; the fake-Grid tests cover the policies and tests/test_overrides.py the merging of
every preset with an override, so they need no separate simulation of ~90 s each."""

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


# Shorter local training than the default 10 s, so a 14 s run closes at least one round
# (the last round closes while the run drains).
EXTRA = {"fedavg.toml": " train.sync-interval=4"}


@pytest.mark.parametrize("preset", ["fedavg.toml"])
def test_preset_runs_end_to_end(tmp_path, preset):
    want = tomllib.loads((ROOT / "conf" / preset).read_text())
    env = {**os.environ, "FEDMOE_STATE": str(tmp_path / "state")}
    proc = subprocess.run(
        ["bash", "scripts/run.sh", "--run-config", f"conf/{preset}", "--run-config",
         f"run.duration=14 run.name='p' run.output-dir='{tmp_path}/out'" + EXTRA.get(preset, "")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    run = tmp_path / "out" / "p"
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "run_config.json").read_text())
    assert summary["strategy"] == want["strategy.name"]
    for key, value in want.items():  # the preset survived the second --run-config
        if key != "run.duration":
            assert config[key] == value, key
    assert config["run.duration"] == 14
    for specialty, meta in summary["experts"].items():
        assert meta["version"] >= 1, (specialty, meta)
    events = [json.loads(line)["event"] for line in (run / "metrics.jsonl").open()]
    if want["strategy.name"] == "fedavg":
        assert "round" in events
