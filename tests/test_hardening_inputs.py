"""Bad inputs, table by table: data files, run config, and deploy.sh arguments.

Each row is one input a careless user or a hostile node could produce, with the exact
outcome: a clear error that names the file:line or the key, or documented handling.
"""

import json
import math
import subprocess
from pathlib import Path

import pytest

import strategies  # noqa: F401  (registers the built-in strategies)
from fedmoe_flwr.config import ConfigError, parse_run_config
from fedmoe_flwr.node.data import MAX_LINE_BYTES, DataError, read_jsonl
from fedmoe_flwr.server.policy import build_strategy

ROOT = Path(__file__).resolve().parents[1]
GOOD = json.dumps({"prompt": "p", "reference_code": "c"})

# (name, line bytes, message the error must contain after "file:2: ")
BAD_LINES = [
    ("not json", b"hello", "invalid JSON"),
    ("truncated object", b'{"prompt": "p"', "invalid JSON"),
    ("trailing comma", b'{"prompt": "p", "reference_code": "c",}', "invalid JSON"),
    ("single quotes", b"{'prompt': 'p', 'reference_code': 'c'}", "invalid JSON"),
    ("list", b'["p", "c"]', "expected a JSON object"),
    ("number", b"42", "expected a JSON object"),
    ("string", b'"p"', "expected a JSON object"),
    ("null", b"null", "expected a JSON object"),
    ("missing prompt", b'{"reference_code": "c"}', "missing field 'prompt'"),
    ("missing answer", b'{"prompt": "p"}', "missing field 'reference_code'"),
    ("prompt number", b'{"prompt": 1, "reference_code": "c"}', "'prompt' must be a string"),
    ("answer list", b'{"prompt": "p", "reference_code": ["c"]}',
     "'reference_code' must be a string"),
    ("prompt null", b'{"prompt": null, "reference_code": "c"}', "'prompt' must be a string"),
    ("answer object", b'{"prompt": "p", "reference_code": {}}',
     "'reference_code' must be a string"),
    ("prompt bool", b'{"prompt": true, "reference_code": "c"}', "'prompt' must be a string"),
    ("empty prompt", b'{"prompt": "", "reference_code": "c"}', "'prompt' is empty"),
    ("blank answer", b'{"prompt": "p", "reference_code": "  \\n "}',
     "'reference_code' is empty"),
    ("latin-1 bytes", '{"prompt": "café", "reference_code": "c"}'.encode("latin-1"),
     "not valid UTF-8"),
    ("lone continuation byte", b'{"prompt": "\x80", "reference_code": "c"}', "not valid UTF-8"),
    ("lone surrogate", b'{"prompt": "\\ud800", "reference_code": "c"}', "lone surrogate"),
    ("lone low surrogate", b'{"prompt": "p", "reference_code": "\\udfff"}', "lone surrogate"),
    ("deep nesting", b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "nested too deeply"),
    ("over the byte cap", b'{"prompt": "' + b"x" * (MAX_LINE_BYTES + 1) + b'", '
     b'"reference_code": "c"}', "over the"),
    ("BOM after line 1", b'\xef\xbb\xbf{"prompt": "p", "reference_code": "c"}', "invalid JSON"),
    ("NaN literal", b'{"prompt": NaN, "reference_code": "c"}', "'prompt' must be a string"),
    ("two objects", b'{"prompt": "p", "reference_code": "c"} {"prompt": "q"}', "invalid JSON"),
    ("bad escape", b'{"prompt": "\\x41", "reference_code": "c"}', "invalid JSON"),
    ("control character", b'{"prompt": "a\x01b", "reference_code": "c"}', "invalid JSON"),
]


@pytest.mark.parametrize(("name", "line", "message"), BAD_LINES, ids=[r[0] for r in BAD_LINES])
def test_bad_line_fails_with_file_and_line_and_is_skipped_under_skip(tmp_path, name, line,
                                                                     message):
    path = tmp_path / "d.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + line + b"\n" + GOOD.encode() + b"\n")
    with pytest.raises(DataError) as err:
        read_jsonl(path)
    assert str(err.value).startswith(f"{path}:2: ") and message in str(err.value), err.value
    rows, skipped = read_jsonl(path, on_error="skip")
    assert (len(rows), skipped) == (2, 1)


def test_bom_on_the_first_line_is_tolerated(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + b"\n")
    assert read_jsonl(path) == ([{"prompt": "p", "reference_code": "c"}], 0)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "no valid examples"), (b"\n\n  \n", "no valid examples"),
    (b"hello\n", "invalid JSON"),
])
def test_empty_or_all_bad_files(tmp_path, content, message):
    path = tmp_path / "e.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_jsonl(path)


BAD_CONFIG = [
    # numbers: inf, nan, negative, zero where positive, absurd sizes
    ("run.duration", math.inf, "run.duration"), ("run.duration", math.nan, "run.duration"),
    ("run.duration", -1.0, "run.duration"), ("run.duration", 0.0, "run.duration"),
    ("run.duration", 1e12, "run.duration"), ("run.max-updates", -1, "run.max-updates"),
    ("run.max-updates", 10**15, "run.max-updates"), ("run.seed", -1, "run.seed"),
    ("run.seed", 2**40, "run.seed"), ("run.register-timeout", 0.0, "run.register-timeout"),
    ("run.register-timeout", math.inf, "run.register-timeout"),
    ("run.message-ttl", 1e-6, "run.message-ttl"), ("run.message-ttl", 1e9, "run.message-ttl"),
    ("run.drain-timeout", -1.0, "run.drain-timeout"), ("run.keep-versions", -1,
                                                       "run.keep-versions"),
    ("run.rejoin-backoff", -5.0, "run.rejoin-backoff"), ("eval.every-s", -1.0, "eval.every-s"),
    ("model.lora-r", 0, "model.lora-r"), ("model.lora-r", 2**70, "model.lora-r"),
    ("model.lora-alpha", 0, "model.lora-alpha"), ("model.lora-dropout", 1.0,
                                                  "model.lora-dropout"),
    ("model.lora-dropout", -0.1, "model.lora-dropout"), ("model.quantization", 2,
                                                         "model.quantization"),
    ("model.quantization", 16, "model.quantization"), ("model.name", "", "model.name"),
    ("model.target-modules", "", "model.target-modules"),
    ("train.sync-interval", 0.0, "train.sync-interval"),
    ("train.sync-interval", math.inf, "train.sync-interval"),
    ("train.max-steps", -3, "train.max-steps"), ("train.learning-rate", 0.0,
                                                 "train.learning-rate"),
    ("train.learning-rate", math.nan, "train.learning-rate"), ("train.batch-size", 0,
                                                               "train.batch-size"),
    ("train.max-seq-len", 8, "train.max-seq-len"), ("train.max-seq-len", 10**9,
                                                    "train.max-seq-len"),
    ("train.torch-threads", -1, "train.torch-threads"),
    ("data.eval-fraction", 0.0, "data.eval-fraction"), ("data.eval-fraction", 1.0,
                                                        "data.eval-fraction"),
    ("data.max-eval-examples", 0, "data.max-eval-examples"),
    ("strategy.fedasync.alpha", math.inf, "strategy.fedasync.alpha"),
    ("strategy.fedasync.staleness-a", -1.0, "strategy.fedasync.staleness-a"),
    ("strategy.fedasync.staleness-decay", 0.0, "strategy.fedasync.staleness-decay"),
    ("strategy.max-staleness", -1, "strategy.max-staleness"),
    ("strategy.max-update-norm", -1.0, "strategy.max-update-norm"),
    ("strategy.max-update-norm", math.inf, "strategy.max-update-norm"),
    ("strategy.fedbuff.server-lr", math.inf, "strategy.fedbuff.server-lr"),
    ("strategy.fedbuff.server-lr", 1e9, "strategy.fedbuff.server-lr"),
    ("gateway.rank", -1, "gateway.rank"), ("gateway.density", 0.0, "gateway.density"),
    ("router.top-k", 0, "router.top-k"), ("router.threshold", 0.0, "router.threshold"),
    ("router.temperature", 0.0, "router.temperature"),
    ("router.embedding-layer", 10**6, "router.embedding-layer"),
    ("router.centroid-examples", -1, "router.centroid-examples"),
    ("sim.speed-factors", "1,inf,1", "sim.speed-factors"),
    ("sim.speed-factors", "1,nan,1", "sim.speed-factors"),
    ("sim.speed-factors", "0.5,1,1", "sim.speed-factors"),
    ("sim.speed-factors", "1,1e9,1", "sim.speed-factors"),
    # types
    ("run.duration", "10", "must be float"), ("run.max-updates", 1.5, "must be int"),
    ("run.max-updates", True, "must be int"), ("model.gradient-checkpointing", 1, "must be bool"),
    ("run.specialties", 3, "comma-separated string"), ("train.batch-size", "8", "must be int"),
    # names that would leave their directory or collide
    ("run.name", "../escape", "run.name"), ("run.name", "a/b", "run.name"),
    ("run.name", "latest", "run.name"), ("run.name", ".hidden", "run.name"),
    ("run.name", "-flag", "run.name"), ("run.name", "a b", "run.name"),
    ("run.name", "x" * 65, "run.name"), ("run.name", "..", "run.name"),
    ("run.name", "a\\b", "run.name"), ("run.name", "a\nb", "run.name"),
    ("run.specialties", "python_expert,../sql", "run.specialties"),
    ("run.specialties", "python_expert,a/b", "run.specialties"),
    ("run.specialties", "gateway", "run.specialties"),
    ("run.specialties", "latest,sql_expert", "run.specialties"),
    ("run.specialties", ",,", "run.specialties"),
    ("sim.specialties", "x/y,a,b", "sim.specialties"),
    # choices and unknown keys
    ("strategy.fedasync.staleness", "cubic", "strategy.fedasync.staleness"),
    ("router.combine", "vote", "router.combine"),
    ("gateway.weighting", "loss", "gateway.weighting"), ("strategy.fedavg.sync-scope", "",
                                                         "strategy.fedavg.sync-scope"),
    ("train.learning_rate", 0.1, "unknown run config key"),
    ("run", 1, "unknown run config key"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_CONFIG,
                         ids=[f"{k}={v!r}"[:40] for k, v, _ in BAD_CONFIG])
def test_bad_config_value_names_the_key(key, value, message):
    # What the ServerApp does before any write: the run config, then the strategy's own keys.
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_strategy(parse_run_config({key: value}))


BAD_DEPLOY = [
    (["supernode", "start", "n'x", "--specialty", "sql_expert", "--data", "data/sql.jsonl"],
     "NAME must be"),
    (["supernode", "start", "n", "--specialty", "sql' evil='1", "--data", "data/sql.jsonl"],
     "--specialty must be"),
    (["supernode", "start", "n", "--specialty", "../sql", "--data", "data/sql.jsonl"],
     "--specialty must be"),
    (["supernode", "start", "n", "--specialty", "sql_expert", "--data", "data/sql.jsonl",
      "--speed", "1' x='2"], "--speed must be a number"),
    (["supernode", "start", "n", "--specialty", "sql_expert", "--data", "data/sql.jsonl",
      "--speed", "fast"], "--speed must be a number"),
    (["supernode", "start", "n", "--specialty", "sql_expert", "--data", "QUOTED"],
     "must not contain quotes"),
    (["supernode", "start", "n", "--specialty", "sql_expert", "--data", "missing.jsonl"],
     "does not exist"),
    (["supernode", "start", "n", "--specialty", "sql_expert"], "--data is required"),
    (["supernode", "start", "n", "--data", "data/sql.jsonl"], "--specialty is required"),
    (["supernode", "start", "n", "--specialty", "sql_expert", "--data", "data/sql.jsonl",
      "--bogus"], "unknown option --bogus"),
    (["superlink", "start", "--bogus"], "unknown option --bogus"),
    (["supernode", "start", "n", "--specialty", "sql_expert", "--data", "data/sql.jsonl",
      "--model-source", "hub"], "--model-source must be one of"),
    (["supernode", "start", "n", "--specialty", "sql_expert", "--data", "data/sql.jsonl",
      "--superlink", "10.0.0.256:8000"], "not a valid IP address"),
    (["supernode", "start", "n", "--specialty", "sql_expert", "--data", "data/sql.jsonl",
      "--port", "70000"], "--port must be a whole number"),
    (["supernode", "stop", "../n"], "NAME must be"),
    (["superlink", "start", "--host", "evil\nhost"], "must be a DNS name"),
    (["certs", "10.0.0.256"], "not a valid IP address"),
    (["certs", "ok.example", "bad\nhost"], "must be a DNS name"),
    (["key", "../x"], "NAME must be"),
    (["register", "../x.pub"], "public key file ../x.pub not found"),  # a path, not a name
    (["register", "x y.pub"], "KEY.pub must be"),
    (["register", "/nonexistent/x.pub"], "public key file /nonexistent/x.pub not found"),
    (["certs", "fe80::1%eth0"], "scoped IPv6 address"),
    (["certs", "ok.example", "fe80::1%2"], "scoped IPv6 address"),
]


@pytest.mark.parametrize(("args", "message"), BAD_DEPLOY, ids=[a[-1][:20] + m[:10]
                                                             for a, m in BAD_DEPLOY])
def test_deploy_refuses_unsafe_arguments_before_starting_anything(tmp_path, monkeypatch,
                                                                  capsys, args, message):
    # In-process: the same entry point the wrapper execs (one subprocess run below proves
    # the wrapper passes arguments and exit status through unchanged).
    from fedmoe_flwr.tools.deploy.cli import main

    quoted = tmp_path / "it's.jsonl"
    quoted.write_text(GOOD + "\n")
    args = [str(quoted) if a == "QUOTED" else a for a in args]
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("FEDMOE_DEPLOY", str(tmp_path / "deploy"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.startswith("deploy: error: ") and err.count("\n") == 1
    assert not (tmp_path / "deploy").exists()  # nothing was written, nothing started
    assert not (tmp_path.parent / "x").exists() and not (tmp_path / "x").exists()


def test_the_deploy_script_passes_arguments_and_exit_status_through(tmp_path):
    env = {"FEDMOE_DEPLOY": str(tmp_path / "deploy"), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    args = ["supernode", "start", "n'x", "--specialty", "sql_expert", "--data",
            "data/sql.jsonl"]
    proc = subprocess.run(["bash", "scripts/deploy.sh", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("deploy: error: NAME must be"), proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "deploy").exists()
