"""Bad command-line inputs, table by table: every `fedmoe` command that reads a file or
binds a port names what is wrong (file:line, key, flag) in one line and exits 2, before any
model is loaded; route-eval, score and evaluate check prompts with the rules of ask/serve."""

import json
import shutil
import socket

import pytest

from fedmoe_flwr.tools.cli import main
from fedmoe_flwr.tools.limits import MAX_TEXT_CHARS, SettingError, check_out_file
from tests.fake_grid import make_node, run

TASK = {"specialty": "sql_expert", "prompt": "list rows", "setup": "CREATE TABLE t(a);",
        "expected": [[1]]}
DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "x" * (MAX_TEXT_CHARS * 2)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    run(tmp, {1: make_node("python_expert"), 2: make_node("sql_expert")},
        **{"run.max-updates": 4})
    return tmp / "run"


@pytest.fixture
def run_dir(pristine, tmp_path, monkeypatch):
    import fedmoe_flwr.node.model as model
    import fedmoe_flwr.tools.inference as inference
    import fedmoe_flwr.tools.scoring as scoring

    def no_model(*_a, **_k):  # every check must come before the model
        raise AssertionError("the model was loaded before the input was checked")

    for module in (model, inference, scoring):
        monkeypatch.setattr(module, "load_base", no_model)
    copy = tmp_path / "run"
    shutil.copytree(pristine, copy, symlinks=True)
    return copy


def _lines(*rows):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def _labelled(prompt, specialty="sql_expert"):
    return _lines('{"prompt": ' + prompt + ', "specialty": "' + specialty + '"}')


# (name, command, file content (None: no file), extra args, message; {f} is the file,
# {file} a plain file, {dir} a directory)
BAD_CLI = [
    ("route-eval surrogate", "route-eval", _labelled('"a\\ud800"'), [],
     "{f}:1: prompt holds a lone surrogate"),
    ("route-eval blank prompt", "route-eval", _labelled('"   "'), [], "{f}:1: prompt is empty"),
    ("route-eval huge prompt", "route-eval", _labelled(json.dumps(HUGE)), [],
     "{f}:1: prompt is " + f"{len(HUGE):,} characters"),
    ("route-eval unknown label", "route-eval", _labelled('"a"', "nope_expert"), [],
     "{f}:1: specialty 'nope_expert' is not an expert of this run"),
    ("route-eval empty file", "route-eval", "", [], "{f}: no prompts"),
    ("route-eval blank lines only", "route-eval", "\n \n", [], "{f}: no prompts"),
    ("route-eval deep nesting", "route-eval", DEEP + "\n", [], "{f}:1: not JSON (nested too"),
    ("route-eval missing file", "route-eval", None, [], "{f} does not exist"),
    ("route-eval --top-k", "route-eval", _labelled('"a"'), ["--top-k", "0"],
     "--top-k must be in [1, 64]"),
    ("route-eval --threshold", "route-eval", _labelled('"a"'), ["--threshold", "2"],
     "--threshold must be in"),
    ("route-eval --router-temperature", "route-eval", _labelled('"a"'),
     ["--router-temperature", "0"], "--router-temperature must be in"),
    ("score empty file", "score", "", [], "{f}: no valid examples"),
    ("score missing file", "score", None, [], "{f}: data file not found"),
    ("score deep nesting", "score", DEEP + "\n", [], "{f}:1: JSON nested too deeply"),
    ("score surrogate", "score", _lines('{"prompt": "a\\ud800", "reference_code": "c"}'), [],
     "{f}:1: field 'prompt' holds a lone surrogate"),
    ("score missing field", "score", _lines({"prompt": "a"}), [],
     "{f}:1: missing field 'reference_code'"),
    ("score huge prompt", "score", "\n" + _lines({"prompt": HUGE, "reference_code": "c"}), [],
     "{f}:2: prompt is " + f"{len(HUGE):,} characters"),
    ("evaluate empty file", "evaluate", "", [], "no tasks in {f}"),
    ("evaluate deep nesting", "evaluate", DEEP + "\n", [], "{f}:1: invalid JSON: nested too"),
    ("evaluate surrogate", "evaluate", _lines({**TASK, "prompt": "a\ud800"}), [],
     "{f}:1: key 'prompt' holds a lone surrogate"),
    ("evaluate huge prompt", "evaluate", _lines({**TASK, "prompt": HUGE}), [],
     "{f}:1: key 'prompt' is " + f"{len(HUGE):,} characters"),
    ("evaluate --adapters", "evaluate", _lines(TASK), ["--adapters", "nope"],
     "--adapters ['nope'] are not in this run"),
    ("evaluate --out under a file", "evaluate", _lines(TASK), ["--out", "{file}/x.json"],
     "--out {file}/x.json: {file} is not a directory"),
    ("evaluate --out a directory", "evaluate", _lines(TASK), ["--out", "{dir}"],
     "--out {dir} is a directory"),
    ("ask --top-k", "ask", None, ["a question", "--top-k", "99"], "--top-k must be in"),
]


@pytest.mark.parametrize(("name", "command", "content", "extra", "message"), BAD_CLI,
                         ids=[r[0] for r in BAD_CLI])
def test_bad_input_is_one_line_naming_it_exit_2(run_dir, tmp_path, capsys, name, command,
                                                content, extra, message):
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    subs = {"f": str(path), "file": str(tmp_path / "a-file"), "dir": str(tmp_path / "a-dir")}
    extra = [a.format(**subs) for a in extra]
    argv = [command, str(run_dir), *extra] if command == "ask" else \
        [command, str(run_dir), str(path), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmoe: error: ") and "\n" not in err, err
    assert message.format(**subs) in err, err


def test_route_eval_on_a_bad_run_data_file_names_its_line(run_dir, tmp_path, capsys):
    # An unlabelled file is read as the run's own data (sim.data-paths): a bad line there is
    # the nodes' DataError, which every command prints as one line too.
    data = tmp_path / "sql.jsonl"
    data.write_text(_lines({"prompt": "p", "reference_code": "c"}, {"prompt": "q"}))
    (run_dir / "run_config.json").write_text(json.dumps(
        {"sim.specialties": "sql_expert", "sim.data-paths": str(data)}))
    assert main(["route-eval", str(run_dir), str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"fedmoe: error: {data}:2: missing field 'reference_code'", err


@pytest.fixture
def busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("command", ["serve", "console"])
def test_a_port_in_use_or_a_foreign_host_is_one_line_before_the_address(
        run_dir, capsys, busy_port, command):
    assert main([command, str(run_dir), "--port", str(busy_port)]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == (f"fedmoe: error: --port {busy_port} is in use on 127.0.0.1 by "
                           f"another process; stop it or choose another port")
    assert "http://" not in out  # no address printed for a server that never listened
    assert main([command, str(run_dir), "--host", "no-such-host.invalid"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fedmoe: error: --host 'no-such-host.invalid' is not an address")


@pytest.mark.parametrize(("where", "message"), [("", "is a directory"),
                                                ("a-dir", "is a directory"),
                                                ("a-file/x.json", "is not a directory"),
                                                ("a-file/deeper/x.json", "is not a directory")])
def test_out_file_is_checked_before_any_work(tmp_path, monkeypatch, where, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    with pytest.raises(SettingError, match=message) as err:
        check_out_file(where)
    assert err.value.setting == "--out" and str(err.value).startswith("--out ")
    assert check_out_file("new/folders/x.json").name == "x.json"  # created on write
