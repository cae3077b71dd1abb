"""End to end: the README's run command drives the real `flwr` CLI and a real SuperLink."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"  # a zombie is not running


def test_flwr_run_trains_every_expert_and_writes_artifacts(tmp_path):
    env = {**os.environ, "FEDMOE_STATE": str(tmp_path / "state")}
    proc = subprocess.run(
        ["bash", "scripts/run.sh", "--run-config",
         f"run.duration=24 train.sync-interval=4 run.name='e2e' run.output-dir='{tmp_path}/out'"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    pid = int(re.search(r"SuperLink pid (\d+)", out).group(1))
    assert not _alive(pid), "run.sh must stop the SuperLink it started"

    run = tmp_path / "out" / "e2e"
    assert (tmp_path / "out" / "latest").resolve() == run.resolve()
    summary = json.loads((run / "summary.json").read_text())
    for specialty in ("python_expert", "sql_expert", "docs_expert"):
        meta = json.loads((run / "experts" / specialty / "meta.json").read_text())
        assert meta["version"] >= 2, (specialty, meta)
        assert summary["experts"][specialty]["version"] == meta["version"]
        assert (run / "experts" / specialty / "adapter_model.safetensors").exists()
        final = summary["eval"]["final"][specialty]
        initial = summary["eval"]["initial"][specialty]
        assert final[specialty] < initial[specialty]  # each expert learned its domain
    assert (run / "gateway" / "adapter_config.json").exists()
    assert (run / "progress.png").exists()
    events = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert sum(e["event"] == "update" for e in events) == summary["updates"] >= 6
