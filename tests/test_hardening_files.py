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
    ("version not a number", lambda d: _edit(d / "meta.json", version="seven"),
     "field 'version'"),
    ("checksum missing", lambda d: _edit(d / "meta.json", sha256=None), "field 'sha256'"),
    ("rank missing", lambda d: _edit(d / "adapter_config.json", r=None), "field 'r'"),
    ("targets not a list", lambda d: _edit(d / "adapter_config.json", target_modules="q"),
     "field 'target_modules'"),
    ("NaN with a matching checksum", lambda d: _nan_with_checksum(d), "holds NaN or Inf"),
    ("meta.json missing", lambda d: (d / "meta.json").unlink(), "has no meta.json"),
    # adapter_config.json has no checksum: it must agree with the (verified) weights
    ("rank disagrees with the weights", lambda d: _edit(d / "adapter_config.json", r=4),
     "field 'r' is 4, but the weights hold rank-8"),
    ("targets miss the weights' modules", lambda d: _edit(
        d / "adapter_config.json", target_modules=["nonexistent_proj"]),
     "does not name module 'q_proj'"),
    ("alpha infinite", lambda d: _edit(d / "adapter_config.json", lora_alpha=float("inf")),
     "field 'lora_alpha'"),
    # the optional meta.json fields the commands format and resume counts with
    ("nodes not a list", lambda d: _edit(d / "meta.json", nodes=5), "field 'nodes'"),
    ("eval_losses a list", lambda d: _edit(d / "meta.json", eval_losses=[1]),
     "field 'eval_losses'"),
    ("last_train_loss a string", lambda d: _edit(d / "meta.json", last_train_loss="x"),
     "field 'last_train_loss'"),
    ("updates a string", lambda d: _edit(d / "meta.json", updates="x"), "field 'updates'"),
]


def _edit(path, **changes):
    obj = __import__("json").loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    path.write_text(__import__("json").dumps(obj))


def _nan_with_checksum(d):
    from safetensors.numpy import load_file

    from fedmoe_flwr.weights import weights_checksum

    weights = {k: np.full_like(v, np.nan) for k, v in
               load_file(str(d / "adapter_model.safetensors")).items()}
    save_file(weights, str(d / "adapter_model.safetensors"))
    _edit(d / "meta.json", sha256=weights_checksum(weights))


COMMANDS = {  # every command that reads a run directory
    "experts": lambda run, out: ["experts", str(run)],
    "gateway": lambda run, out: ["gateway", str(run)],
    "export": lambda run, out: ["export", str(run), "--adapter", "sql_expert", "--out", str(out)],
    "score": lambda run, out: ["score", str(run), "data/eval/sql.jsonl"],
    "route-eval": lambda run, out: ["route-eval", str(run), "data/eval/sql.jsonl"],
    "ask": lambda run, out: ["ask", str(run), "a question"],
    "evaluate": lambda run, out: ["evaluate", str(run), "data/eval/exec/sql.jsonl"],
    "stop": lambda run, out: ["stop", str(run)],
}


@pytest.mark.parametrize(("name", "damage", "message"), DAMAGE, ids=[d[0] for d in DAMAGE])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_damaged_checkpoint_is_a_one_line_error_in_every_command(
        run_dir, tmp_path, capsys, name, damage, message, command):
    damage(current(run_dir))  # the python expert; every command checks the whole run first
    assert main(COMMANDS[command](run_dir, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmoe: error: ") and message in err and "\n" not in err, err
    assert str(run_dir) in err  # names the file
    assert not (tmp_path / "out").exists()


def _router(**ngram_counts_or_centroids):
    """A router.json of hand-made statistics: ``ngrams=`` counts, ``centroids=`` vectors."""
    ngrams = ngram_counts_or_centroids.get("ngrams")
    centroids = ngram_counts_or_centroids.get("centroids", {})
    doc = {"specialties": {s: {"centroid": c, "examples": 1, "nodes": 1}
                           for s, c in centroids.items()}}
    if ngrams is not None:
        doc["ngrams"] = {"buckets": ngrams.pop("buckets", 8), "sizes": [3, 4, 5],
                         "specialties": ngrams}
    return __import__("json").dumps(doc)


GOOD = {"python_expert": {"1": 2.0}, "sql_expert": {"3": 1.0}}
RUN_DAMAGE = [  # damage of the run's other files; each is a one-line error in every command
    ("gateway coefficient a string", lambda r: _edit(current(r, "gateway") / "meta.json",
                                                     coefficients={"sql_expert": "a"}),
     "field 'coefficients'"),
    ("gateway coefficients a list", lambda r: _edit(current(r, "gateway") / "meta.json",
                                                    coefficients=[1, 2]),
     "field 'coefficients'"),
    ("gateway rank disagrees with its meta", lambda r: _edit(
        current(r, "gateway") / "adapter_config.json", r=15), "field 'r'"),
    ("an expert removed", lambda r: (r / "experts" / "sql_expert").unlink(),
     "experts/sql_expert is missing, but"),
    ("every expert removed", lambda r: shutil.rmtree(r / "experts"),
     "holds no expert checkpoint"),
    ("experts/ replaced by a file", lambda r: (shutil.rmtree(r / "experts"), (
        r / "experts").write_text("x")), "holds no expert checkpoint"),
    ("run_config.json rank differs", lambda r: (r / "run_config.json").write_text(
        '{"model.lora-r": 4}'), "model.lora-r is 4, field 'r' is 8"),
    ("run_config.json model differs", lambda r: (r / "run_config.json").write_text(
        '{"model.name": "nope-model"}'), "model.name is 'nope-model'"),
    ("summary updates a string", lambda r: _edit(r / "summary.json", updates="x"),
     "summary.json is damaged: field 'updates'"),
    ("n-gram count NaN", lambda r: (r / "router.json").write_text(_router(ngrams={
        **GOOD, "sql_expert": {"3": float("nan")}})), "'ngrams.specialties.sql_expert'"),
    ("n-gram count negative", lambda r: (r / "router.json").write_text(_router(ngrams={
        **GOOD, "sql_expert": {"3": -5.0}})), "finite and non-negative"),
    ("n-gram count past float32", lambda r: (r / "router.json").write_text(_router(ngrams={
        **GOOD, "sql_expert": {"3": 1e300}})), "finite and non-negative"),
    ("n-gram buckets huge", lambda r: (r / "router.json").write_text(_router(ngrams={
        **GOOD, "buckets": 10 ** 12})), "field 'ngrams.buckets'"),
    ("n-gram bucket id outside", lambda r: (r / "router.json").write_text(_router(ngrams={
        **GOOD, "sql_expert": {"99": 1.0}})), "bucket ids outside"),
    ("centroid NaN", lambda r: (r / "router.json").write_text(_router(centroids={
        "python_expert": [float("nan"), 0.0], "sql_expert": [0.0, 1.0]})), "finite vector"),
    ("centroid huge", lambda r: (r / "router.json").write_text(_router(centroids={
        "python_expert": [1e300, 0.0], "sql_expert": [0.0, 1.0]})), "mean of unit"),
    ("centroids of different lengths", lambda r: (r / "router.json").write_text(_router(
        centroids={"python_expert": [1.0, 0.0], "sql_expert": [0.0, 0.5, 0.5]})),
     "differs from the others'"),
    ("centroid not numbers", lambda r: (r / "router.json").write_text(_router(centroids={
        "python_expert": "abc", "sql_expert": [0.0, 1.0]})), "must be a list of numbers"),
    ("router names an expert the run lacks", lambda r: (r / "router.json").write_text(
        _router(ngrams={**GOOD, "docs_expert": {"2": 1.0}})),
     "experts/docs_expert is missing, but"),
]


@pytest.mark.parametrize(("name", "damage", "message"), RUN_DAMAGE,
                         ids=[d[0] for d in RUN_DAMAGE])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_damaged_run_file_is_a_one_line_error_in_every_command(
        run_dir, tmp_path, capsys, name, damage, message, command):
    damage(run_dir)
    assert main(COMMANDS[command](run_dir, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmoe: error: ") and message in err and "\n" not in err, err
    assert str(run_dir) in err  # names the file
    assert not (tmp_path / "out").exists()


def test_a_run_without_these_files_is_still_fine(run_dir, capsys):
    (run_dir / "router.json").write_text(_router(ngrams=dict(GOOD), centroids={
        "python_expert": [0.6, 0.8], "sql_expert": [0.0, 1.0]}))
    (run_dir / "run_config.json").write_text('{"model.name": "qwen2-tiny"}')
    assert main(["experts", str(run_dir)]) == 0, capsys.readouterr().err


def test_resume_refuses_damaged_meta_with_one_config_error(run_dir):
    from fedmoe_flwr.server.resume import load_resume_state

    for changes in ({"updates": "x"}, {"eval_losses": [1, 2]}):
        _edit(current(run_dir) / "meta.json", **changes)
        with pytest.raises(ConfigError, match="run.resume-from.*meta.json is damaged"):
            load_resume_state(str(run_dir), parse_run_config({}).model,
                              ("python_expert", "sql_expert"))


@pytest.mark.parametrize("file", ["run_config.json", "router.json"])
def test_a_damaged_run_file_is_a_one_line_error(run_dir, capsys, file):
    (run_dir / file).write_text('{"a": ')
    assert main(["experts", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{file} is damaged" in err and "\n" not in err


def test_a_run_config_with_a_nonsense_value_names_the_file(run_dir, capsys):
    (run_dir / "run_config.json").write_text('{"train.batch-size": -3}')
    assert main(["ask", str(run_dir), "a question"]) == 2
    err = capsys.readouterr().err.strip()
    assert "run_config.json" in err and "train.batch-size" in err


def test_resume_refuses_an_expert_that_holds_nan(run_dir):
    _nan_with_checksum(current(run_dir))
    from fedmoe_flwr.server.resume import load_resume_state

    with pytest.raises(ConfigError, match="run.resume-from.*NaN"):
        load_resume_state(str(run_dir), parse_run_config({}).model,
                          ("python_expert", "sql_expert"))


def test_route_eval_on_invalid_utf8_names_file_and_line(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "a", "specialty": "sql_expert"}\n{"prompt": "\xff"}\n')
    assert main(["route-eval", str(run_dir), str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: not valid UTF-8" in err


def test_an_unwritable_export_destination_names_out(run_dir, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file
            target = tmp_path / "a-file" / "out"
            (tmp_path / "a-file").write_text("x")
        else:
            target = locked / "out"
        assert main(["export", str(run_dir), "--adapter", "sql_expert", "--out",
                     str(target)]) == 2
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert f"--out {target}" in err and ".out." not in err


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
