"""`fedmoe deploy` without starting a federation: every check on good and bad values, the
certificates and keys it writes (loaded back with `cryptography`), and the pid-file rule that
only a process whose create time and command line match is ever signalled."""

import json
import os
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from fedmoe_flwr.config import MODEL_SOURCES
from fedmoe_flwr.tools.deploy import certs, keys, procs, superlink, validate
from fedmoe_flwr.tools.deploy.args import SPECS, parse
from fedmoe_flwr.tools.deploy.cli import main
from fedmoe_flwr.tools.deploy.layout import Layout
from fedmoe_flwr.tools.deploy.supernode import Node
from fedmoe_flwr.tools.deploy.validate import DeployError

ROOT = Path(__file__).resolve().parents[1]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]
POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")


@pytest.fixture
def deploy(tmp_path, monkeypatch):
    """An empty FEDMOE_DEPLOY under tmp_path, the working directory being tmp_path."""
    monkeypatch.chdir(tmp_path)
    for var in ("FEDMOE_SUPERLINK_PORT", "FEDMOE_SUPERLINK_HOST", "FORCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FEDMOE_DEPLOY", str(tmp_path / "deploy"))
    return tmp_path / "deploy"


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")) if root.exists() else []


# --- the checks, value by value ------------------------------------------------------------

GOOD_HOSTS = [("coordinator.example.org", "coordinator.example.org"), ("A-1.b", "a-1.b"),
              ("localhost", "localhost"), ("10.0.0.5", "10.0.0.5"), ("0.0.0.0", "0.0.0.0"),
              ("::1", "::1"), ("2001:DB8::0:1", "2001:db8::1"), ("x" * 63, "x" * 63)]
BAD_HOSTS = ["", "10.0.0.256", "10.0.0", "1.2.3.4.5", "999.1.1.1", "host\nevil", "host name",
             " host", "a..b", "-a.b", "a-.b", "a_b.org", "../etc", "a/b", "a\\b", "*.example",
             "x" * 64, ".".join(["a" * 60] * 5), "example.123", "host:80", "1.2.3.4:80",
             "[::1]", "h'x", 'h"x', "fe80::1%eth0\n", "host.", "\x00",
             "fe80::1%eth0", "fe80::1%2"]  # scoped: a certificate would drop the scope


@pytest.mark.parametrize(("value", "want"), GOOD_HOSTS)
def test_host_accepts_dns_names_and_ip_addresses(value, want):
    assert validate.host(value) == want


@pytest.mark.parametrize("value", BAD_HOSTS, ids=repr)
def test_host_refuses_everything_else(value):
    with pytest.raises(DeployError):
        validate.host(value)


@pytest.mark.parametrize(("value", "want"), [("1", 1), ("8000", 8000), ("65535", 65535)])
def test_port_good(value, want):
    assert validate.port(value) == want


@pytest.mark.parametrize("value", ["0", "65536", "-1", "80a", "", " 80", "8_000", "٣", "1e3"])
def test_port_bad(value):
    with pytest.raises(DeployError, match="port must be a whole number"):
        validate.port(value)


@pytest.mark.parametrize(("value", "want"), [
    ("127.0.0.1:8000", "127.0.0.1:8000"), ("Coord.Example.org:9", "coord.example.org:9"),
    ("[::1]:8000", "[::1]:8000"), ("localhost:65535", "localhost:65535")])
def test_address_good(value, want):
    assert validate.address(value) == want


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.1:", ":8000", "::1:8000",
                                   "[host]:8000", "10.0.0.256:8000", "h:0", "h:8000:1",
                                   "h'x:8000", "h:80\n", "[::1]8000"])
def test_address_bad(value):
    with pytest.raises(DeployError):
        validate.address(value)


@pytest.mark.parametrize("value", ["1", "1.0", "2.5", "10", "100.25"])
def test_speed_good(value):
    assert validate.speed(value) == value


@pytest.mark.parametrize("value", ["0.5", "0", "fast", "1' x='2", "-2", "1e3", "inf", "nan",
                                   "", "1.", ".5", " 1", "1\n"])
def test_speed_bad(value):
    with pytest.raises(DeployError, match="--speed must be a number >= 1"):
        validate.speed(value)


@pytest.mark.parametrize("value", ["1", "2", "64", "all"])
def test_gpus_good(value):
    assert validate.gpus(value) == value


@pytest.mark.parametrize("value", ["0", "65", "-1", "2.5", "ALL", "4' x='1", "", " 2"])
def test_gpus_bad(value):
    with pytest.raises(DeployError, match="--gpus must be a whole number from 1 to 64"):
        validate.gpus(value)


@pytest.mark.parametrize("value", MODEL_SOURCES)
def test_model_source_choices_come_from_the_config(value):
    assert validate.model_source(value) == value


@pytest.mark.parametrize("value", ["", "hub", "local'", "AUTO"])
def test_model_source_bad(value):
    with pytest.raises(DeployError, match="--model-source must be one of"):
        validate.model_source(value)


@pytest.mark.parametrize("value", ["sql-node", "n", "py_0", "a.b", "x" * 64])
def test_name_good(value):
    assert validate.name(value, "NAME") == value


@pytest.mark.parametrize("value", ["../x", "a/b", "a\\b", "..", ".hidden", "-rf", "n'x",
                                   'n"x', "a\nb", "", "x" * 65, "gateway", "a..b", "a b",
                                   "C:x"])
def test_name_bad(value):
    with pytest.raises(DeployError, match="NAME must be"):
        validate.name(value, "NAME")


@pytest.mark.parametrize("value", ["", "a\nb", "a\x00b", "a\rb"])
def test_path_refuses_control_characters(value):
    with pytest.raises(DeployError, match="without control characters"):
        validate.path(value, "--ca")


def test_data_file_is_absolute_and_must_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.jsonl").write_text("{}\n")
    assert validate.data_file("d.jsonl") == str(tmp_path / "d.jsonl")
    with pytest.raises(DeployError, match="does not exist"):
        validate.data_file("missing.jsonl")
    with pytest.raises(DeployError, match="does not exist"):
        validate.data_file(str(tmp_path))  # a directory is not a data file


@pytest.mark.parametrize("name", ["it's.jsonl", 'q"x.jsonl', "b\\s.jsonl"])
def test_data_file_refuses_quotes_and_backslashes(tmp_path, name):
    (tmp_path / name).write_text("{}\n")
    with pytest.raises(DeployError, match="must not contain quotes"):
        validate.data_file(str(tmp_path / name))


@POSIX
def test_data_file_refuses_a_link_whose_target_has_a_quote(tmp_path):
    (tmp_path / "it's").mkdir()
    (tmp_path / "it's" / "d.jsonl").write_text("{}\n")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "it's" / "d.jsonl")
    with pytest.raises(DeployError, match="must not contain quotes"):
        validate.data_file(str(tmp_path / "link.jsonl"))


@pytest.mark.parametrize(("value", "want"), [("", False), ("0", False), ("1", True)])
def test_flag(value, want):
    assert validate.flag(value, "FORCE") is want
    with pytest.raises(DeployError, match="FORCE must be 0 or 1"):
        validate.flag("yes", "FORCE")


# --- command lines -------------------------------------------------------------------------

def test_parse_supernode_start_checks_and_fills_every_value(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    opts = parse(SPECS["supernode start"], [
        "n1", "--superlink", "10.0.0.5:8000", "--specialty", "sql_expert", "--data", str(data),
        "--speed", "2.5", "--gpus", "4", "--model-source", "modelscope", "--port", "9101",
        "--cold"])
    assert opts == {"name": "n1", "superlink": "10.0.0.5:8000", "specialty": "sql_expert",
                    "data": str(data), "speed": "2.5", "gpus": "4", "model_source": "modelscope",
                    "port": 9101, "ca": None, "insecure": False, "cold": True}
    layout = Layout.from_env({"FEDMOE_DEPLOY": str(tmp_path / "dep")}, tmp_path)
    assert Node.from_args(layout, opts).node_config() == (
        f"specialty='sql_expert' data-path='{data}' speed-factor=2.5 gpus='4' "
        f"model-source='modelscope'")


@pytest.mark.parametrize(("argv", "message"), [
    (["supernode", "start", "n", "--specialty"], "--specialty needs a value"),
    (["supernode", "start", "n", "--port", "0"], "--port must be a whole number"),
    (["supernode", "start", "n", "--superlink", "evil host:1"], "--superlink"),
    (["supernode", "start", "n", "--model-source", "x"], "--model-source must be one of"),
    (["supernode", "start", "n", "--ca", "a\nb"], "--ca must be a path"),
    (["supernode", "start", "n", "--data", "x\ny.jsonl"], "--data must be a path"),
    (["supernode", "start"], "NAME is required"),
    (["supernode", "stop", "../n"], "NAME must be"),
    (["supernode", "stop"], "supernode stop NAME | --all"),
    (["supernode", "stop", "n", "--all"], "supernode stop NAME | --all"),
    (["superlink", "start", "--host", "10.0.0.256"], "not a valid IP address"),
    (["superlink", "start", "--host"], "--host needs a value"),
    (["superlink", "stop", "extra"], "unexpected argument"),
    (["superlink", "restart"], "superlink start|stop|status"),
    (["certs"], "give at least one HOST_OR_IP"),
    (["certs", "10.0.0.256"], "not a valid IP address"),
    (["certs", "ok.example", "bad\nhost"], "must be a DNS name"),
    (["certs", "ok.example", "--bogus"], "unknown option --bogus"),
    (["key"], "NAME is required"),
    (["key", "../x"], "NAME must be"),
    (["key", "a/b"], "NAME must be"),
    (["key", "a", "b"], "unexpected argument"),
    (["register"], "KEY.pub is required"),
    (["register", "../x.pub"], "public key file ../x.pub not found"),  # a path, not a name
    (["register", "/nonexistent.pub"], "public key file /nonexistent.pub not found"),
    (["register", "x y.pub"], "KEY.pub must be"),
    (["register", "x\n.pub"], "KEY.pub must be"),
    (["frobnicate"], "unknown command"),
])
def test_bad_command_lines_are_one_line_errors_with_nothing_written(deploy, capsys, argv,
                                                                    message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("deploy: error: ") and message in err and err.count("\n") == 1, err
    assert not deploy.exists()


@pytest.mark.parametrize(("var", "value", "message"), [
    ("FEDMOE_SUPERLINK_PORT", "80x", "FEDMOE_SUPERLINK_PORT must be"),
    ("FEDMOE_SUPERLINK_HOST", "a b", "FEDMOE_SUPERLINK_HOST must be"),
    ("FEDMOE_DEPLOY", "x\ny", "FEDMOE_DEPLOY must be a path"),
    ("FORCE", "yes", "FORCE must be 0 or 1")])
def test_bad_environment_is_refused_before_anything_is_written(deploy, capsys, monkeypatch,
                                                               var, value, message):
    monkeypatch.setenv(var, value)
    assert main(["certs", "127.0.0.1"]) == 2
    assert message in capsys.readouterr().err
    assert not deploy.exists() and not list(Path.cwd().iterdir())


def test_help_and_the_fedmoe_dispatch(deploy, capsys):
    from fedmoe_flwr.tools.cli import main as fedmoe

    assert fedmoe(["deploy", "--help"]) == 0
    assert "fedmoe deploy certs" in capsys.readouterr().out
    assert fedmoe(["deploy"]) == 2
    assert fedmoe(["deploy", "key", "../x"]) == 2
    assert "deploy: error: NAME must be" in capsys.readouterr().err


# --- certificates --------------------------------------------------------------------------

def _load(deploy: Path) -> tuple[x509.Certificate, x509.Certificate]:
    d = deploy / "certs"
    return (x509.load_pem_x509_certificate((d / "ca.crt").read_bytes()),
            x509.load_pem_x509_certificate((d / "server.pem").read_bytes()))


def test_certs_a_ca_and_a_server_certificate_for_the_hosts(deploy, capsys):
    assert main(["certs", "Coord.Example.org", "10.0.0.5", "::1"]) == 0
    assert "SuperLink certificate for: coord.example.org 10.0.0.5 ::1 localhost 127.0.0.1" \
        in capsys.readouterr().out
    d = deploy / "certs"
    assert sorted(p.name for p in d.iterdir()) == ["ca.crt", "ca.key", "server.key",
                                                   "server.pem"]
    assert not [p for p in deploy.iterdir() if p.name.startswith(".")]  # no temp dirs left
    ca, server = _load(deploy)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "FedMoE-Flower CA"
    assert ca.subject == ca.issuer and server.issuer == ca.subject
    ca.verify_directly_issued_by(ca)  # self-signed
    server.verify_directly_issued_by(ca)  # the chain: the CA signed the server certificate
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["coord.example.org", "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [
        "10.0.0.5", "::1", "127.0.0.1"]
    days = lambda c: (c.not_valid_after_utc - c.not_valid_before_utc).days  # noqa: E731
    assert days(ca) == 3650 and days(server) == 825
    for name, cert in (("ca.key", ca), ("server.key", server)):
        key = serialization.load_pem_private_key((d / name).read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
        assert key.public_key().public_numbers() == cert.public_key().public_numbers()


@POSIX
def test_certs_private_keys_are_0600(deploy):
    assert main(["certs", "127.0.0.1"]) == 0
    for name, mode in (("ca.key", 0o600), ("server.key", 0o600), ("ca.crt", 0o644)):
        assert stat.S_IMODE((deploy / "certs" / name).stat().st_mode) == mode, name


def test_certs_refuse_to_replace_a_set_unless_forced(deploy, capsys, monkeypatch):
    assert main(["certs", "127.0.0.1"]) == 0
    first = (deploy / "certs" / "ca.crt").read_bytes()
    assert main(["certs", "127.0.0.1"]) == 2
    assert "set FORCE=1 or pass --force" in capsys.readouterr().err
    assert main(["certs", "10.0.0.256", "--force"]) == 2  # a bad input keeps the old set
    assert (deploy / "certs" / "ca.crt").read_bytes() == first
    assert main(["certs", "10.0.0.7", "--force"]) == 0
    second = (deploy / "certs" / "ca.crt").read_bytes()
    assert second != first
    monkeypatch.setenv("FORCE", "1")
    assert main(["certs", "10.0.0.8"]) == 0
    assert (deploy / "certs" / "ca.crt").read_bytes() != second


def test_certs_a_failure_midway_leaves_no_half_set(deploy, monkeypatch):
    def broken(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(certs, "make_server", broken)
    assert main(["certs", "127.0.0.1"]) == 2
    assert not (deploy / "certs").exists() and not list(deploy.iterdir())
    monkeypatch.undo()
    monkeypatch.setenv("FEDMOE_DEPLOY", str(deploy))
    assert main(["certs", "127.0.0.1"]) == 0
    before = {p.name: p.read_bytes() for p in (deploy / "certs").iterdir()}
    monkeypatch.setattr(certs, "make_server", broken)
    assert main(["certs", "127.0.0.1", "--force"]) == 2
    assert {p.name: p.read_bytes() for p in (deploy / "certs").iterdir()} == before
    assert [p.name for p in deploy.iterdir()] == ["certs"]


@pytest.mark.parametrize("hosts", [["10.0.0.256"], ["ok", "host\nevil"], ["1.2.3"]])
def test_certs_with_an_invalid_host_write_nothing(deploy, hosts):
    assert main(["certs", *hosts]) == 2
    assert _files(deploy.parent) == []


# --- SuperNode keys ------------------------------------------------------------------------

def test_key_writes_an_openssh_ecdsa_p384_pair(deploy, capsys):
    assert main(["key", "sql-node"]) == 0
    assert "register sql-node.pub" in capsys.readouterr().out
    private_bytes = (deploy / "keys" / "sql-node").read_bytes()
    public_bytes = (deploy / "keys" / "sql-node.pub").read_bytes()
    assert private_bytes.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert public_bytes.startswith(b"ecdsa-sha2-nistp384 ") and public_bytes.endswith(
        b" sql-node\n")
    private = serialization.load_ssh_private_key(private_bytes, password=None)
    public = serialization.load_ssh_public_key(public_bytes)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert private.curve.name == public.curve.name == "secp384r1"
    assert private.public_key().public_numbers() == public.public_numbers()
    keys.check_public(deploy / "keys" / "sql-node.pub")  # what register accepts
    if os.name != "nt":
        assert stat.S_IMODE((deploy / "keys" / "sql-node").stat().st_mode) == 0o600


def test_key_never_replaces_a_key(deploy, capsys):
    assert main(["key", "n"]) == 0
    before = (deploy / "keys" / "n").read_bytes()
    assert main(["key", "n"]) == 2
    assert "exists; pick another name" in capsys.readouterr().err
    assert (deploy / "keys" / "n").read_bytes() == before


@pytest.mark.parametrize("name", ["../x", "../../x", "/tmp/x", "..", "a/../../x"])
def test_key_with_path_parts_never_writes_outside_keys(deploy, name):
    assert main(["key", name]) == 2
    assert _files(deploy.parent) == []
    with pytest.raises(DeployError):
        keys.key_path(deploy / "keys", name)


def _ed25519_pub() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


@pytest.mark.parametrize(("content", "message"), [
    (b"garbage", "is not an OpenSSH public key"), (None, "is not an ECDSA public key")])
def test_register_refuses_what_is_not_an_ecdsa_public_key(deploy, capsys, content, message):
    (deploy.parent / "k.pub").write_bytes(content or _ed25519_pub())
    assert main(["register", str(deploy.parent / "k.pub")]) == 2
    assert message in capsys.readouterr().err
    assert not deploy.exists()


def test_register_needs_the_key_and_the_connection(deploy, capsys):
    assert main(["register", "nope.pub"]) == 2
    assert "keys/nope.pub is missing" in capsys.readouterr().err.replace(os.sep, "/")
    assert main(["key", "n"]) == 0
    assert main(["register", "n.pub"]) == 2
    assert "config.toml is missing" in capsys.readouterr().err


# --- the flwr connection -------------------------------------------------------------------

def test_connection_file_is_valid_toml_for_any_deploy_path(tmp_path):
    odd = tmp_path / 'it\'s "odd" \\ dir'
    layout = Layout.from_env({"FEDMOE_DEPLOY": str(odd)}, tmp_path)
    layout.make_dirs()
    path = superlink.write_connection(layout, "127.0.0.1:8000", insecure=False)
    conf = tomllib.loads(path.read_text())["superlink"]
    assert conf["default"] == "fedmoe"
    assert conf["fedmoe"] == {"address": "127.0.0.1:8000",
                              "root-certificates": str(odd / "certs" / "ca.crt")}
    superlink.write_connection(layout, "127.0.0.1:8000", insecure=True)
    assert tomllib.loads(path.read_text())["superlink"]["fedmoe"]["insecure"] is True


def test_health_url_probes_loopback_for_a_wildcard_bind(tmp_path):
    layout = Layout.from_env({"FEDMOE_SUPERLINK_PORT": "9000"}, tmp_path)
    assert superlink.health_url(layout, "0.0.0.0", False) == "https://127.0.0.1:9000/health"
    assert superlink.health_url(layout, "::1", True) == "http://[::1]:9000/health"


# --- pid files: only the process that was started is ever signalled -----------------------

def _plant(path: Path, pid: int, create_time: float, cmdline: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "create_time": create_time, "cmdline": cmdline}))


@pytest.fixture
def sleeper():
    child = subprocess.Popen(SLEEPER)
    try:
        ps = psutil.Process(child.pid)
        for _ in range(100):  # until the child runs the command (not the forked parent)
            if ps.cmdline() == SLEEPER:
                break
            time.sleep(0.02)
        yield child, ps
    finally:
        child.kill()
        child.wait()


def test_a_pid_file_naming_pid_1_is_removed_and_never_signalled(tmp_path, capsys):
    pidfile = tmp_path / "pids" / "superlink.pid"
    one = psutil.Process(1) if psutil.pid_exists(1) else None
    _plant(pidfile, 1, 12345.0, ["flower-superlink"])
    lines = procs.stop([(pidfile, "SuperLink")])
    assert "stale pid file" in lines[0] and "nothing signalled" in lines[0]
    assert not pidfile.exists()
    if one is not None:
        assert one.is_running()


@pytest.mark.parametrize("wrong", ["create_time", "cmdline", "legacy"])
def test_a_live_process_that_does_not_match_the_record_is_not_signalled(tmp_path, sleeper,
                                                                        wrong):
    child, ps = sleeper
    pidfile = tmp_path / "pids" / "supernode-n.pid"
    if wrong == "legacy":  # what scripts/deploy.sh wrote: a bare pid, nothing to verify
        pidfile.parent.mkdir(parents=True)
        pidfile.write_text(f"{child.pid}\n")
    else:
        created = ps.create_time() - 3600 if wrong == "create_time" else ps.create_time()
        cmdline = ps.cmdline() if wrong == "create_time" else ["flower-supernode", "x"]
        _plant(pidfile, child.pid, created, cmdline)
    assert procs.lookup(pidfile).state == "stale"
    lines = procs.stop([(pidfile, "SuperNode n")])
    assert "nothing signalled" in lines[0], lines
    assert not pidfile.exists()
    time.sleep(0.2)
    assert child.poll() is None and ps.is_running()  # still alive: never signalled


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="boot ticks: Linux")
def test_linux_matches_on_boot_ticks_so_a_clock_step_does_not_make_a_process_stale(tmp_path,
                                                                                   sleeper):
    child, ps = sleeper
    pidfile = tmp_path / "pids" / "worker-n.pid"
    start = procs.boot_start(child.pid)
    boot, ticks = start.split(":")
    # The wall clock moved an hour since the start: same process, still found running.
    pidfile.parent.mkdir()
    pidfile.write_text(procs.PidRecord(child.pid, ps.create_time() + 3600, tuple(ps.cmdline()),
                                       start).to_json())
    assert procs.lookup(pidfile).state == "running"
    for wrong in (f"{boot}:{int(ticks) + 1}", f"{'0' * len(boot)}:{ticks}"):  # reused pid,
        pidfile.write_text(procs.PidRecord(child.pid, ps.create_time(),  # or a reboot
                                           tuple(ps.cmdline()), wrong).to_json())
        assert procs.lookup(pidfile).state == "stale"
        assert "nothing signalled" in procs.stop([(pidfile, "worker of n")], quiet=True)[0]
        assert child.poll() is None and not pidfile.exists()


def test_status_calls_a_mismatching_pid_file_stale(deploy, sleeper, capsys):
    child, ps = sleeper
    _plant(deploy / "pids" / "supernode-n.pid", child.pid, ps.create_time() + 100, ps.cmdline())
    _plant(deploy / "pids" / "superlink.pid", child.pid, ps.create_time(), ["other"])
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "SuperLink not running" in out and "SuperNode n not running (stale pid file)" in out
    assert child.poll() is None


def test_stop_ends_a_matching_process_and_everything_below_it(tmp_path):
    # A parent (own session, as deploy starts everything) with a child that would outlive it.
    code = ("import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
            "time.sleep(30)")
    pidfile = tmp_path / "pids" / "worker-n.pid"
    pidfile.parent.mkdir()
    proc, record = procs.spawn([sys.executable, "-c", code], cwd=tmp_path, env=os.environ,
                               log=tmp_path / "w.log", pidfile=pidfile)
    try:
        parent = psutil.Process(proc.pid)
        for _ in range(200):
            if parent.children():
                break
            time.sleep(0.05)
        kids = parent.children(recursive=True)
        assert kids, "the child did not start"
        want = {"pid": proc.pid, "create_time": parent.create_time(),
                "cmdline": parent.cmdline()}
        if sys.platform.startswith("linux"):
            want["boot_start"] = procs.boot_start(proc.pid)
        assert json.loads(pidfile.read_text()) == want
        if os.name != "nt":
            assert os.getsid(proc.pid) == proc.pid  # its own session
        assert procs.lookup(pidfile).state == "running"
        assert procs.stop([(pidfile, "worker of n")], quiet=True) == [
            f"stopped worker of n (pid {proc.pid})"]
        proc.wait(timeout=15)
        psutil.wait_procs(kids, timeout=15)
        assert not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids)
        assert not pidfile.exists()
    finally:
        for p in psutil.Process(os.getpid()).children(recursive=True):
            p.kill()


def test_stop_all_and_supernode_stop_with_nothing_running(deploy, capsys):
    assert main(["stop-all"]) == 0
    assert main(["supernode", "stop", "n"]) == 0
    out = capsys.readouterr().out
    assert "SuperNode n is not running" in out and "worker of n is not running" in out
    assert main(["status"]) == 0
    assert "no SuperNodes started from this machine" in capsys.readouterr().out


def test_deploy_runs_without_bash_or_any_other_program_on_path(tmp_path):
    # Only the interpreter: no bash, openssl, ssh-keygen, pgrep, setsid or curl to call.
    env = {"PATH": str(tmp_path / "empty"), "FEDMOE_DEPLOY": str(tmp_path / "d"),
           "HOME": str(tmp_path), "SYSTEMROOT": os.environ.get("SYSTEMROOT", "")}
    for argv in (["certs", "127.0.0.1"], ["key", "n"], ["status"], ["stop-all"]):
        proc = subprocess.run([sys.executable, "-m", "fedmoe_flwr.tools.deploy", *argv],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "d" / "certs" / "server.pem").is_file()
    assert (tmp_path / "d" / "keys" / "n.pub").is_file()


def _code_strings(path: Path) -> list[str]:
    """Every string literal of a module but its docstrings."""
    import ast

    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docs]


def test_the_package_calls_no_shell_tools():
    import ast

    for path in sorted((ROOT / "fedmoe_flwr" / "tools" / "deploy").glob("*.py")):
        for text in _code_strings(path):
            first = text.split(" ")[0]
            assert first not in ("bash", "sh", "pgrep", "setsid", "openssl", "ssh-keygen",
                                 "curl", "kill", "chmod", "head"), (path.name, text)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword):
                assert node.arg != "shell", path.name
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("system", "killpg", "popen"), (path.name, node.attr)


# --- the health probe against the certificates it made (an in-process HTTPS server) ------

class _Running:
    def poll(self):
        return None


def _https_health_server(certs_dir: Path):
    import http.server
    import ssl
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs_dir / "server.pem", certs_dir / "server.key")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_wait_healthy_verifies_the_superlink_certificate_with_the_ca(deploy, tmp_path):
    assert main(["certs", "127.0.0.1"]) == 0
    server = _https_health_server(deploy / "certs")
    try:
        port = server.server_address[1]
        for host in ("127.0.0.1", "localhost"):  # both in the subjectAltName
            superlink.wait_healthy(f"https://{host}:{port}/health", deploy / "certs" / "ca.crt",
                                   _Running(), tmp_path / "log")
        other = tmp_path / "other"  # a CA that did not sign the server certificate
        monkey_env = {"FEDMOE_DEPLOY": str(other)}
        certs.create(Layout.from_env(monkey_env, tmp_path).certs, ["127.0.0.1"], False)
        with pytest.raises(DeployError, match="certificate that does not verify"):
            superlink.wait_healthy(f"https://127.0.0.1:{port}/health",
                                   other / "certs" / "ca.crt", _Running(), tmp_path / "log")
    finally:
        server.shutdown()


def test_wait_healthy_reports_a_superlink_that_exited(tmp_path):
    class Exited:
        def poll(self):
            return 1

    from fedmoe_flwr.tools.run import free_port

    with pytest.raises(DeployError, match="the SuperLink exited"):
        superlink.wait_healthy(f"http://127.0.0.1:{free_port()}/health", None, Exited(),
                               tmp_path / "superlink.log")


def test_a_restarted_process_appends_to_its_log_under_a_header(tmp_path):
    # the lines that say why a node crashed must survive its restart
    log, pidfile = tmp_path / "supernode-n.log", tmp_path / "supernode-n.pid"
    for word in ("first-life", "second-life"):
        proc, _ = procs.spawn([sys.executable, "-c", f"print('{word}')"], cwd=tmp_path,
                              env=os.environ, log=log, pidfile=pidfile)
        assert proc.wait(timeout=60) == 0
    text = log.read_text()
    assert text.index("first-life") < text.index("second-life")
    assert text.count("=== ") == 2 and f"starting {Path(sys.executable).name} ===" in text
