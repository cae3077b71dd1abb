"""Damaged run directories and dangerous export destinations: one-line errors, exit 2,
nothing overwritten that an export did not write."""

import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file

from fedmoe_flwr.config import ConfigError, parse_run_config
from fedmoe_flwr.server.artifacts import RunDirectory
from fedmoe_flwr.tools.cli import main
from tests.fake_grid import make_node, run


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("files")
    run(tmp, {1: make_node("python_expert"), 2: make_node("sql_expert")},
        **{"run.max-updates": 4})
    return tmp / "run"


@pytest.fixture
def run_dir(pristine, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(pristine, copy, symlinks=True)
    return copy


def current(run_dir, name="python_expert"):
    link = run_dir / "experts" / name if name != "gateway" else run_dir / "gateway"
    return link.resolve()


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = [
    ("truncated safetensors", lambda d: truncate(d / "adapter_model.safetensors"),
     "adapter_model.safetensors is damaged"),
    ("garbage safetensors", lambda d: (d / "adapter_model.safetensors").write_bytes(b"\x00" * 64),
     "adapter_model.safetensors is damaged"),
    ("empty safetensors", lambda d: (d / "adapter_model.safetensors").write_bytes(b""),
     "adapter_model.safetensors is damaged"),
    ("altered weights", lambda d: save_file(
        {k: v + 1 for k, v in __import__("safetensors.numpy", fromlist=["load_file"]).load_file(
            str(d / "adapter_model.safetensors")).items()}, str(d / "adapter_model.safetensors")),
     "does not match the checksum"),
    ("missing safetensors", lambda d: (d / "adapter_model.safetensors").unlink(),
     "adapter_model.safetensors is damaged"),
    ("garbage meta.json", lambda d: (d / "meta.json").write_text("{not json"),
     "meta.json is damaged"),
    ("meta.json a list", lambda d: (d / "meta.json").write_text("[1, 2]"),
     "meta.json is damaged"),
    ("binary meta.json", lambda d: (d / "meta.json").write_bytes(b"\xff\xfe\x00"),
     "meta.json is damaged"),
    ("garbage adapter_config.json", lambda d: (d / "adapter_config.json").write_text("]"),
     "adapter_config.json is damaged"),
]


@pytest.mark.parametrize(("name", "damage", "message"), DAMAGE, ids=[d[0] for d in DAMAGE])
@pytest.mark.parametrize("command", ["export", "experts"])
def test_damaged_checkpoint_is_a_one_line_error(run_dir, tmp_path, capsys, name, damage,
                                                message, command):
    damage(current(run_dir))
    argv = (["export", str(run_dir), "--adapter", "python_expert", "--out",
             str(tmp_path / "out")] if command == "export" else ["experts", str(run_dir)])
    if command == "experts" and "safetensors" in message or "checksum" in message:
        argv = ["export", str(run_dir), "--adapter", "python_expert", "--format", "npz",
                "--out", str(tmp_path / "out.npz")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmoe: error: ") and message in err and "\n" not in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.npz").exists()


def test_garbage_summary_is_a_one_line_error(run_dir, capsys):
    (run_dir / "summary.json").write_text("{")
    assert main(["experts", str(run_dir)]) == 2
    assert "summary.json is damaged" in capsys.readouterr().err


def export(run_dir, out, *extra):
    return main(["export", str(run_dir), "--adapter", "python_expert", "--out", str(out),
                 *extra])


@pytest.mark.parametrize("where", ["", ".", "..", "RUN", "RUN/experts", "RUN/../..",
                                   "PARENT", "RUN/experts/new"])
def test_force_never_targets_the_run_the_cwd_or_an_empty_path(run_dir, tmp_path, capsys,
                                                               monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    out = where.replace("PARENT", str(run_dir.parent)).replace("RUN", str(run_dir))
    before = sorted(p.name for p in run_dir.iterdir())
    assert export(run_dir, out, "--force") == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == before
    assert (run_dir / "summary.json").exists()


def test_force_replaces_only_an_earlier_export(run_dir, tmp_path, capsys):
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    assert export(run_dir, mine, "--force") == 2
    assert "not an earlier export" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "precious"
    a_file = tmp_path / "data.npz"
    a_file.write_text("not an npz")
    assert export(run_dir, a_file, "--force", "--format", "npz") == 2
    assert a_file.read_text() == "not an npz"
    link = tmp_path / "link"
    os.symlink(run_dir, link)
    assert export(run_dir, link, "--force") == 2
    earlier = tmp_path / "earlier"
    assert export(run_dir, earlier) == 0
    assert export(run_dir, earlier, "--force") == 0  # an earlier export may be replaced
    npz = tmp_path / "gw.npz"
    assert export(run_dir, npz, "--format", "npz") == 0
    assert export(run_dir, npz, "--format", "npz", "--force") == 0
    with np.load(npz) as data:
        assert "version" in data.files


def test_stop_refuses_a_finished_run(run_dir, capsys):
    assert main(["stop", str(run_dir)]) == 2
    assert "finished already" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["metrics.jsonl", "summary.json", "notes.txt"])
def test_an_existing_run_directory_is_never_reused(tmp_path, content):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / content).write_text("{}")
    with pytest.raises(ConfigError, match="exists already"):
        RunDirectory(tmp_path, "r", parse_run_config({}).model)
    assert (tmp_path / "r" / content).read_text() == "{}"


def test_unwritable_output_dir_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot create the run directory"):
        RunDirectory(tmp_path / "file", "r", parse_run_config({}).model)
