"""One checked reader of a run directory, on runs with everything a ServerApp writes
(``run_config.json``, ``router.json``, a real model): the damage the fake grid's runs
cannot show, and the console following a run whose checkpoint is damaged or mid-write."""

import json
import os
import shutil

import numpy as np
import pytest

from fedmoe_flwr.config import ConfigError
from fedmoe_flwr.server.rundir import RunView
from fedmoe_flwr.tools.cli import main
from fedmoe_flwr.tools.untrained_run import untrained_run


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return untrained_run(tmp_path_factory.mktemp("untrained"))


@pytest.fixture
def run_dir(pristine, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(pristine, copy, symlinks=True)
    return copy


def _edit(path, **changes):
    obj = json.loads(path.read_text())
    obj.update(changes)
    path.write_text(json.dumps(obj))


def _fails(argv, capsys, *messages):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmoe: error: ") and "\n" not in err, err
    for message in messages:
        assert message in err, err
    return err


@pytest.mark.parametrize("argv", [["experts"], ["export", "--format", "vllm", "--out", "OUT"],
                                  ["ask", "select rows from a table"], ["gateway"]])
def test_a_missing_expert_of_a_live_run_is_named_not_skipped(run_dir, tmp_path, capsys,
                                                             argv):
    (run_dir / "experts" / "sql_expert").unlink()  # still named by router.json
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    _fails([argv[0], str(run_dir), *argv[1:]], capsys, "experts/sql_expert is missing",
           "router.json names it", "try again")
    assert not (tmp_path / "out").exists()


def test_centroids_of_another_width_are_refused_before_routing(run_dir, capsys):
    doc = json.loads((run_dir / "router.json").read_text())
    for i, name in enumerate(("docs_expert", "python_expert", "sql_expert")):
        doc["specialties"][name] = {"centroid": np.eye(64)[i].tolist(), "examples": 1,
                                    "nodes": 1}  # unit vectors: fine but for their width
    (run_dir / "router.json").write_text(json.dumps(doc))
    assert main(["experts", str(run_dir)]) == 0  # no model read: nothing to compare with
    capsys.readouterr()
    _fails(["ask", str(run_dir), "a question", "--router", "centroid"], capsys,
           "router.json is damaged", "'specialties.docs_expert.centroid' has 64 dimensions")


def test_a_huge_alpha_is_refused_by_run_config_and_by_the_merged_export(run_dir, tmp_path,
                                                                        capsys):
    config = os.path.realpath(run_dir / "experts" / "sql_expert" / "adapter_config.json")
    _edit(__import__("pathlib").Path(config), lora_alpha=1e308)
    out = tmp_path / "merged"
    argv = ["export", str(run_dir), "--adapter", "sql_expert", "--format", "merged", "--out",
            str(out)]
    _fails(argv, capsys, "model.lora-alpha is 16, field 'lora_alpha' is 1e+308")
    (run_dir / "run_config.json").unlink()  # a hand-made run: the merge itself is checked
    _fails(argv, capsys, "gives NaN/Inf", "nothing written")
    assert not out.exists() and not list(tmp_path.glob(".*merged*"))


def test_a_model_that_cannot_be_loaded_names_run_config(run_dir, monkeypatch):
    from fedmoe_flwr.tools import inference

    def unavailable(cfg):
        raise FileNotFoundError("LocalEntryNotFoundError: no such repo in the cache")

    monkeypatch.setattr(inference, "load_base", unavailable)
    run = RunView(run_dir)
    with pytest.raises(ConfigError, match=r"run_config.json: model.name 'qwen2-tiny' cannot "
                                          r"be loaded \(FileNotFoundError"):
        inference.load_run_base(run, inference.run_app_config(run))


def _console_experts(run_dir):
    from fedmoe_flwr.tools.console.source import RunSource

    source = RunSource(run_dir)
    view = source.view()
    return source, {e["name"]: e for e in view["experts"]}, view["gateway"]


def test_console_flags_a_damaged_checkpoint_and_waits_out_one_mid_write(run_dir):
    weights = run_dir / "experts" / "python_expert" / "adapter_model.safetensors"
    data = weights.read_bytes()
    os.chmod(weights.resolve(), 0o644)
    weights.resolve().write_bytes(data[: len(data) // 2])  # truncated, the link intact
    sql = run_dir / "experts" / "sql_expert"
    target = os.readlink(sql)
    sql.unlink()
    os.symlink(target + "-pruned", sql)  # the writer pruned the version just resolved
    source, experts, gateway = _console_experts(run_dir)
    assert "adapter_model.safetensors is damaged" in experts["python_expert"]["damaged"]
    assert experts["docs_expert"]["damaged"] is None and experts["docs_expert"]["checkpoint"] == 1
    assert experts["sql_expert"]["damaged"] is None  # not damage: read again next poll
    assert gateway["damaged"] is None and gateway["version"] == 1
    sql.unlink()
    os.symlink(target, sql)  # the new version is published
    assert {e["name"]: e for e in source.view()["experts"]}["sql_expert"]["checkpoint"] == 1
    docs_meta = (run_dir / "experts" / "docs_expert" / "meta.json").resolve()
    stat = docs_meta.stat()
    _edit(docs_meta, examples_seen=99)  # the writer re-saved the version with more in it
    os.utime(docs_meta, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    assert {e["name"]: e for e in source.view()["experts"]}["docs_expert"]["examples"] == 99
