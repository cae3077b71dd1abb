"""The non-default strategies run end to end in `flwr run` from their presets (plus a short-run
override). FedAsync, the default, is the main end-to-end run (test_e2e_flwr_run.py); the
straggler presets are FedAsync with speed factors, whose parsing tests/test_config.py checks."""

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


# FedBuff's K = 3 with one node per specialty needs 3 updates per version: shorter local
# training so a 20 s run makes several.
EXTRA = {"fedbuff.toml": " train.sync-interval=4"}


@pytest.mark.parametrize("preset", ["fedavg.toml", "fedbuff.toml"])
def test_preset_runs_end_to_end(tmp_path, preset):
    want = tomllib.loads((ROOT / "conf" / preset).read_text())
    env = {**os.environ, "FEDMOE_STATE": str(tmp_path / "state")}
    proc = subprocess.run(
        ["bash", "scripts/run.sh", "--run-config", f"conf/{preset}", "--run-config",
         f"run.duration=20 run.name='p' run.output-dir='{tmp_path}/out'" + EXTRA.get(preset, "")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    run = tmp_path / "out" / "p"
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "run_config.json").read_text())
    assert summary["strategy"] == want["strategy.name"]
    for key, value in want.items():  # the preset survived the second --run-config
        if key != "run.duration":
            assert config[key] == value, key
    assert config["run.duration"] == 20
    for specialty, meta in summary["experts"].items():
        assert meta["version"] >= 1, (specialty, meta)
    events = [json.loads(line)["event"] for line in (run / "metrics.jsonl").open()]
    if want["strategy.name"] == "fedavg":
        assert "round" in events
