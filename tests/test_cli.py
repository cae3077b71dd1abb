"""The fedmoe CLI: tables, exports (peft / npz / merged) and every documented error."""

import re

import numpy as np
import pytest

from fedmoe_flwr.server.rundir import RunView
from fedmoe_flwr.tools.cli import main, parse_args
from fedmoe_flwr.tools.export import load_npz
from tests.fake_grid import make_node, run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    nodes = {1: make_node("python_expert"), 2: make_node("sql_expert", delay=2)}
    run(tmp, nodes, **{"run.max-updates": 6})
    return tmp / "run"


def test_experts_table(run_dir, capsys):
    assert main(["experts", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "python_expert" in out and "sql_expert" in out and "run finished" in out
    versions = {e.name: e.version for e in RunView(run_dir).experts()}
    assert sum(versions.values()) == 6
    assert re.search(rf"python_expert\s*│\s*{versions['python_expert']}\s*│", out)


def test_gateway_table(run_dir, capsys):
    assert main(["gateway", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "method cat" in out and "r=16" in out  # two rank-8 experts concatenated
    # Weights by examples seen: python 4 updates x 8, sql 2 x 8 -> 32 / 48 and 16 / 48.
    assert re.search(r"python_expert\s*│\s*0.667", out)
    assert re.search(r"sql_expert\s*│\s*0.333", out)


@pytest.mark.parametrize(("argv", "message"), [
    (["experts", "/nonexistent/run"], "run directory /nonexistent/run does not exist"),
    (["experts", "{run}/metrics.jsonl"], "metrics.jsonl is a file, not a run directory"),
    (["export", "{run}", "--adapter", "rust_expert", "--out", "{tmp}/x"],
     "no adapter 'rust_expert' in .*; valid: python_expert, sql_expert, gateway"),
    (["export", "{run}", "--adapter", "gateway", "--out", "{tmp}"], "exists; choose another"),
])
def test_errors_name_the_problem_and_exit_2(run_dir, tmp_path, capsys, argv, message):
    argv = [a.format(run=run_dir, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedmoe: error: ")
    assert re.search(message, err), err


def test_run_dir_without_checkpoint(tmp_path, capsys):
    assert main(["experts", str(tmp_path)]) == 2
    assert "has no checkpoint yet" in capsys.readouterr().err


def test_default_run_dir_is_outputs_latest(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["experts"]) == 2
    assert "outputs/latest does not exist; start a run" in capsys.readouterr().err


def test_export_peft_and_force(run_dir, tmp_path):
    out = tmp_path / "py"
    assert main(["export", str(run_dir), "--adapter", "python_expert", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"adapter_config.json", ".fedmoe-export",
                                               "adapter_model.safetensors", "meta.json"}
    assert main(["export", str(run_dir), "--adapter", "sql_expert", "--out", str(out)]) == 2
    assert main(["export", str(run_dir), "--adapter", "sql_expert", "--out", str(out),
                 "--force"]) == 0
    assert '"sql_expert"' in (out / "meta.json").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_npz_round_trip(run_dir, tmp_path):
    out = tmp_path / "gw.npz"
    assert main(["export", str(run_dir), "--adapter", "gateway", "--format", "npz",
                 "--out", str(out)]) == 0
    weights, meta = load_npz(out)
    info = RunView(run_dir).adapter("gateway")
    want = info.weights()
    assert set(weights) == set(want)
    for k in want:
        np.testing.assert_array_equal(weights[k], want[k])
    assert meta["version"] == info.version and meta["adapter"] == "gateway"
    assert (meta["lora_r"], meta["lora_alpha"]) == (info.config["r"], info.config["lora_alpha"])


@pytest.mark.parametrize("argv", [
    ["route-eval", "RUN", "--router", "loss", "a.jsonl", "b.jsonl"],
    ["route-eval", "RUN", "a.jsonl", "--router", "loss", "b.jsonl"],
    ["route-eval", "--router", "loss", "RUN", "a.jsonl", "b.jsonl"],
])
def test_options_may_sit_between_positionals(argv):
    args = parse_args(argv)
    assert args.items == ["RUN", "a.jsonl", "b.jsonl"] and args.router == "loss"


def test_unknown_options_are_still_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["route-eval", "RUN", "a.jsonl", "--no-such-flag"])
    assert exc.value.code == 2 and "--no-such-flag" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["experts", "RUN", "extra"])


def test_a_simulation_asks_ray_for_a_share_of_the_gpus(monkeypatch):
    from fedmoe_flwr.tools.actors import gpu_share

    monkeypatch.delenv("SIM_GPUS_PER_NODE", raising=False)
    assert gpu_share(4, gpus=0) == 0.0  # a CPU machine asks for none
    assert gpu_share(4, gpus=1) == 0.25 and gpu_share(3, gpus=1) == 0.33
    assert gpu_share(1, gpus=2) == 1.0  # one actor, one whole GPU at most
    monkeypatch.setenv("SIM_GPUS_PER_NODE", "0")
    assert gpu_share(4, gpus=8) == 0.0  # the override keeps a GPU machine on the CPU


def test_run_help_explains_its_own_flags_and_starts_nothing(monkeypatch, capsys):
    from fedmoe_flwr.tools import run as run_tool

    def started(*_a, **_k):
        raise AssertionError("fedmoe run --help started a SuperLink")

    monkeypatch.setattr(run_tool, "start_superlink", started)
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--nodes N" in out and "--run-config" in out and "SIM_ACTORS" in out


def test_ctrl_c_in_fedmoe_run_is_one_line_and_exit_130(monkeypatch, capsys):
    from fedmoe_flwr.tools import run as run_tool

    def interrupted(_argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_tool, "simulate", interrupted)
    assert main(["run", "--run-config", "run.duration=5"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "fedmoe run: interrupted; every process it started is stopped"


def test_verbose_is_in_the_help_and_taken_before_any_command(run_dir, monkeypatch, capsys):
    import fedmoe_flwr.tools.cli as cli

    seen = []
    monkeypatch.setattr(cli, "setup_logging", lambda verbose=False, **_: seen.append(verbose))
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--verbose" in capsys.readouterr().out
    assert main(["--verbose", "experts", str(run_dir)]) == 0 and seen[-1] is True
    assert main(["experts", str(run_dir)]) == 0 and seen[-1] is False
