"""End to end: the README's run command drives the real `flwr` CLI and a real SuperLink;
then the `fedmoe` console script inspects, routes and answers from what the run wrote."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FEDMOE = Path(sys.executable).parent / "fedmoe"  # the console script installed in .venv
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"  # a zombie is not running


@pytest.fixture(scope="module")
def flwr_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "FEDMOE_STATE": str(tmp / "state")}
    proc = subprocess.run(
        ["bash", "scripts/run.sh", "--run-config",
         f"run.duration=18 train.sync-interval=3 run.name='e2e' run.output-dir='{tmp}/out'"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return tmp, out, env


def fedmoe(*args, env=None, check=True):
    proc = subprocess.run([str(FEDMOE), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_flwr_run_trains_every_expert_and_writes_artifacts(flwr_run):
    tmp, out, _ = flwr_run
    pid = int(re.search(r"SuperLink pid (\d+)", out).group(1))
    assert not _alive(pid), "run.sh must stop the SuperLink it started"

    run = tmp / "out" / "e2e"
    assert (tmp / "out" / "latest").resolve() == run.resolve()
    summary = json.loads((run / "summary.json").read_text())
    for specialty in ("python_expert", "sql_expert", "docs_expert"):
        meta = json.loads((run / "experts" / specialty / "meta.json").read_text())
        assert meta["version"] >= 2, (specialty, meta)
        assert summary["experts"][specialty]["version"] == meta["version"]
        assert (run / "experts" / specialty / "adapter_model.safetensors").exists()
        final = summary["eval"]["final"][specialty]
        initial = summary["eval"]["initial"][specialty]
        assert final[specialty] < initial[specialty]  # each expert learned its domain
    # The default gateway is the exact cat merge: rank 3 x 8, evaluated by the nodes.
    gw = json.loads((run / "gateway" / "adapter_config.json").read_text())
    assert gw["r"] == 24 and "gateway" in summary["eval"]["final"]["sql_expert"]
    assert (run / "progress.png").exists() and (run / "run_config.json").exists()
    events = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert sum(e["event"] == "update" for e in events) == summary["updates"] >= 6
    assert set(json.loads((run / "router.json").read_text())["specialties"]) == {
        "python_expert", "sql_expert", "docs_expert"}


def test_fedmoe_experts_and_gateway_tables(flwr_run):
    tmp, _, env = flwr_run
    run = tmp / "out" / "e2e"
    experts = fedmoe("experts", run, env=env).stdout
    for specialty in ("python_expert", "sql_expert", "docs_expert"):
        assert re.search(rf"{specialty}\s*│\s*\d+\s*│", experts), experts
    gateway = fedmoe("gateway", run, env=env).stdout
    assert "method cat" in gateway and "r=24" in gateway
    bad = fedmoe("export", run, "--adapter", "nope", "--out", tmp / "x", env=env, check=False)
    assert bad.returncode == 2 and "valid: docs_expert, python_expert, sql_expert, gateway" \
        in bad.stderr


def test_centroid_routing_accuracy_on_the_eval_splits(flwr_run):
    tmp, _, env = flwr_run
    run = tmp / "out" / "e2e"
    proc = fedmoe("route-eval", run, "data/python.jsonl", "data/sql.jsonl", "data/docs.jsonl",
                  "--router", "centroid", env=env)
    row = re.search(r"centroid\s*│.*│\s*([\d.]+)%\s*│\s*\d+\s*│", proc.stdout)
    assert row, proc.stdout
    assert float(row.group(1)) >= 95.0, proc.stdout


def test_ask_is_deterministic_and_routes_multi_domain_prompts_to_both(flwr_run):
    tmp, _, env = flwr_run
    run = tmp / "out" / "e2e"
    prompt = "Write the SQL query that lists overdue invoices and the Python function that runs it"
    one = fedmoe("ask", run, prompt, "--seed", 3, "--temperature", 0.8,
                 "--max-new-tokens", 24, env=env).stdout
    two = fedmoe("ask", run, prompt, "--seed", 3, "--temperature", 0.8,
                 "--max-new-tokens", 24, env=env).stdout
    assert one == two
    used = re.search(r"experts used: (.*)", one).group(1)
    assert "sql_expert" in used and "python_expert" in used, one
    assert "answer:" in one
