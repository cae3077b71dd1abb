"""Runs without bash and without symlinks: pointer files where the OS refuses links.

The fast tests write run directories in the symlink-free mode (``FEDMOE_NO_SYMLINKS=1``,
or ``os.symlink`` failing as on Windows without developer mode) and read them back with
every reader: ``RunView``, the CLI, exports and resume.  The slow one runs the real
simulation, listing and exports with ``PATH`` reduced to the virtual environment and a
guard named ``bash``: no coreutils, no shell for this project's code.  The guard lets one
call through, Ray's own: on Linux and macOS Ray execs each worker as ``bash -c
'<python> .../default_worker.py ...'`` (``ray/_private/runtime_env/context.py``; on
Windows it uses ``cmd.exe``), so that call is Ray's requirement on POSIX, not ours.  Any
other call of ``bash`` is logged and fails, and the test fails on it.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fedmoe_flwr.config import parse_run_config
from fedmoe_flwr.logs import LEVEL_ENV, QUIET_ENV
from fedmoe_flwr.server import artifacts
from fedmoe_flwr.server.artifacts import RunDirectory, point, pointer_file
from fedmoe_flwr.server.rundir import RunDirError, RunView, follow
from fedmoe_flwr.tools.cli import main
from tests.fake_grid import INIT, make_node, run
from tests.test_quiet_logs import noise

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _links(root: Path) -> list[str]:
    return [str(Path(d) / n) for d, dirs, files in os.walk(root) for n in dirs + files
            if (Path(d) / n).is_symlink()]


@pytest.fixture()
def no_symlinks(monkeypatch):
    monkeypatch.setenv("FEDMOE_NO_SYMLINKS", "1")


def test_pointer_mode_writes_no_symlink_and_every_reader_follows(tmp_path, no_symlinks,
                                                                 capsys):
    nodes = {1: make_node("python_expert"), 2: make_node("sql_expert", delay=2)}
    _, summary, _ = run(tmp_path, nodes, **{"run.max-updates": 6})
    assert _links(tmp_path) == []
    assert (tmp_path / "latest.ref").read_text() == "run\n"
    ref = (tmp_path / "run" / "experts" / "python_expert.ref").read_text().strip()
    assert ref == f".versions/python_expert-v{summary['experts']['python_expert']['version']:06d}"
    view = RunView(tmp_path / "latest")
    assert view.root == (tmp_path / "run").resolve()
    assert view.names() == ["python_expert", "sql_expert", "gateway"]
    assert {e.name: e.version for e in view.experts()} == {
        s: e["version"] for s, e in summary["experts"].items()}
    assert main(["experts", str(tmp_path / "latest")]) == 0
    assert main(["export", str(tmp_path / "latest"), "--adapter", "gateway", "--out",
                 str(tmp_path / "gw")]) == 0
    assert (tmp_path / "gw" / "adapter_model.safetensors").is_file()
    assert "run finished" in capsys.readouterr().out


def test_resume_from_a_pointer_mode_run(tmp_path, no_symlinks):
    nodes = {1: make_node("python_expert"), 2: make_node("sql_expert")}
    _, first, _ = run(tmp_path / "a", nodes, **{"run.max-updates": 4})
    _, second, events = run(tmp_path / "b", nodes, **{"run.max-updates": 2,
                                                      "run.resume-from": str(tmp_path / "a" /
                                                                             "latest")})
    resumed = next(e for e in events if e["event"] == "resume")
    assert resumed["versions"]["python_expert"] == first["experts"]["python_expert"]["version"]
    assert sum(e["version"] for e in second["experts"].values()) == \
        sum(e["version"] for e in first["experts"].values()) + 2


def test_pointer_mode_is_chosen_when_the_os_refuses_symlinks(tmp_path, monkeypatch):
    monkeypatch.delenv("FEDMOE_NO_SYMLINKS", raising=False)

    def refuse(*_args, **_kwargs):
        raise OSError(1314, "A required privilege is not held by the client")

    monkeypatch.setattr(artifacts.os, "symlink", refuse)
    out = RunDirectory(tmp_path, "r", parse_run_config({}).model, keep_versions=2)
    try:
        assert out.symlinks is False and (tmp_path / "latest.ref").is_file()
        for version in range(1, 5):
            out.save_adapter("experts/python_expert", INIT, version, {"version": version})
        versions = sorted(p.name for p in (out.root / "experts" / ".versions").iterdir())
        assert versions == ["python_expert-v000003", "python_expert-v000004"]  # pruned
        assert RunView(tmp_path / "latest", check=False).adapter("python_expert").version == 4
    finally:
        out.close()


def test_symlinks_are_used_where_they_work_and_replace_a_stale_pointer(tmp_path, monkeypatch):
    monkeypatch.delenv("FEDMOE_NO_SYMLINKS", raising=False)
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    point(tmp_path / "latest", "old", symlinks=False)
    assert follow(tmp_path / "latest") == (tmp_path / "old").resolve()
    point(tmp_path / "latest", "new", symlinks=True)
    assert (tmp_path / "latest").is_symlink() and not pointer_file(tmp_path / "latest").exists()
    point(tmp_path / "latest", "old", symlinks=False)  # and back: the link goes
    assert not (tmp_path / "latest").is_symlink()
    assert follow(tmp_path / "latest") == (tmp_path / "old").resolve()
    assert artifacts.symlinks_allowed(tmp_path) is True


@pytest.mark.parametrize("target", ["../../etc", "/etc", "", "a\\..\\b"])
def test_a_damaged_pointer_is_refused_with_its_path(tmp_path, target):
    (tmp_path / "latest.ref").write_text(target)
    with pytest.raises(RunDirError, match=r"latest\.ref is damaged"):
        RunView(tmp_path / "latest")


GUARD = """#!{python}
import os, sys
command = " ".join(sys.argv[1:])
if sys.argv[1:2] == ["-c"] and "default_worker.py" in command:
    os.execv("{bash}", ["bash", *sys.argv[1:]])  # Ray's worker start-up (see the module doc)
with open({log!r}, "a") as log:
    log.write(repr(sys.argv) + "\\n")
sys.exit(127)
"""


@pytest.mark.slow
def test_fedmoe_run_without_bash_or_symlinks_prints_only_the_project_lines(tmp_path):
    # One simulation for two promises: it runs with no bash and no symlinks, and (quiet by
    # default) neither it nor `fedmoe route-eval` prints the libraries' known noise.
    guard_dir, calls = tmp_path / "guard", tmp_path / "bash-calls.log"
    guard_dir.mkdir()
    (guard_dir / "bash").write_text(GUARD.format(python=sys.executable, bash="/bin/bash",
                                                 log=str(calls)))
    (guard_dir / "bash").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV and k != LEVEL_ENV}
    env.update({"PATH": f"{BIN}{os.pathsep}{guard_dir}", "FEDMOE_NO_SYMLINKS": "1",
                "FEDMOE_STATE": str(tmp_path / "state")})
    for tool in ("bash", "sh", "ls", "env", "pkill", "curl"):
        assert not (BIN / tool).exists(), f"{tool} in {BIN}: PATH would still have it"
    config = (f"run.duration=900 run.max-updates=4 train.sync-interval=2 run.name='nobash' "
              f"run.output-dir='{tmp_path / 'out'}' run.specialties='python_expert,sql_expert' "
              f"sim.specialties='python_expert,sql_expert' "
              f"sim.data-paths='data/python.jsonl,data/sql.jsonl' sim.speed-factors='1,1'")
    fedmoe = str(BIN / "fedmoe")
    proc = subprocess.run([fedmoe, "run", "--nodes", "2", "--run-config", config], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    printed = proc.stdout + proc.stderr
    assert proc.returncode == 0, printed[-4000:]
    assert noise(printed) == {}, printed[-6000:]
    assert re.search(r"tau=\d+\s+a=[\d.]+ .*loss [\d.]+", printed), printed[-3000:]  # updates
    assert "results:" in printed and "registered" in printed
    out = tmp_path / "out"
    assert _links(out) == [] and (out / "latest.ref").read_text().strip() == "nobash"
    summary = json.loads((out / "nobash" / "summary.json").read_text())
    assert set(summary["experts"]) == {"python_expert", "sql_expert"}
    assert summary["updates"] > 0
    listed = subprocess.run([fedmoe, "experts", str(out / "latest")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "run finished" in listed.stdout, listed.stderr
    for args in (["--adapter", "python_expert", "--out", str(tmp_path / "peft")],
                 ["--format", "vllm", "--out", str(tmp_path / "vllm")]):
        exported = subprocess.run([fedmoe, "export", str(out / "latest"), *args], cwd=ROOT,
                                  env=env, capture_output=True, text=True, timeout=300)
        assert exported.returncode == 0, exported.stdout + exported.stderr
    assert (tmp_path / "peft" / "adapter_config.json").is_file()
    routed = subprocess.run([fedmoe, "route-eval", str(out / "latest"), "data/eval/python.jsonl",
                             "data/eval/sql.jsonl"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)  # every router: loss loads the model
    printed = routed.stdout + routed.stderr
    assert routed.returncode == 0, printed[-4000:]
    assert noise(printed) == {}, printed[-6000:]
    assert "routing accuracy (top-1)" in printed and "loss" in printed and "ngrams" in printed
    assert _links(tmp_path / "vllm") == []
    assert not calls.exists(), f"bash was called outside Ray's worker start-up: " \
                               f"{calls.read_text()}"


def test_a_pointer_named_run_dir_is_taken_as_the_run_dir_of_ask_and_route_eval(tmp_path):
    from fedmoe_flwr.tools.cli import _split_run_dir

    (tmp_path / "run").mkdir()
    point(tmp_path / "latest", "run", symlinks=False)
    items = [str(tmp_path / "latest"), "data/eval/sql.jsonl"]
    assert _split_run_dir(items, "FILE.jsonl") == (items[0], items[1:])
    assert _split_run_dir(["data/eval/sql.jsonl"], "FILE.jsonl") == (None, items[1:])
