"""The live console's JSON endpoint, page and command on runs made by the fake grid."""

import json
import re

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from fedmoe_flwr import events as ev
from fedmoe_flwr.server.rundir import RunView
from fedmoe_flwr.tools.console import (
    console_main,
    create_console_app,
    is_public_console_path,
    mount_console,
)
from fedmoe_flwr.tools.console.app import ASSETS
from fedmoe_flwr.tools.console.tail import EventTail
from tests.fake_grid import make_node, run


@pytest.fixture()
def run_dir(tmp_path):
    nodes = {1: make_node("python_expert"), 2: make_node("sql_expert", delay=2)}
    run(tmp_path, nodes, **{"run.max-updates": 6})
    return tmp_path / "run"


def _state(client, since=None, **headers):
    r = client.get("/console/api/state", params={"since": since} if since else None,
                   headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


def _append(path, *events, tail=""):
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(ev.to_line(e) + "\n" for e in events) + tail)


def _update(node, adapter, version, elapsed, loss=0.5, staleness=0, epsilon=None):
    return ev.Update(elapsed=elapsed, specialty=adapter, adapter=adapter, node=node,
                     staleness=staleness, mixing=1.0, applied=True, version=version,
                     num_examples=8, train_loss=loss, steps=1, tokens=10, train_seconds=1.0,
                     load_seconds=0.0, base_version=version - 1, round_trip=1.0,
                     process_seconds=0.0, transfer_wait=0.0, server_seconds=0.01,
                     bytes_out=1000, bytes_in=600, backlog=0, epsilon=epsilon)


def test_snapshot_shows_the_run_as_its_checkpoints_and_events_say(run_dir):
    client = TestClient(create_console_app(run_dir.parent / "latest", None))
    view = _state(client)
    assert view["reset"] is True
    run_info = view["run"]
    assert run_info["name"] == "run" and run_info["status"] == "finished"
    assert run_info["strategy"] == "fedasync" and run_info["updates"] == 6
    on_disk = {e.name: e.version for e in RunView(run_dir).experts()}
    assert {e["name"]: e["version"] for e in view["experts"]} == on_disk
    python = next(e for e in view["experts"] if e["name"] == "python_expert")
    assert python["by_node"] == {"1": on_disk["python_expert"]}
    assert python["staleness_histogram"] == {"0": on_disk["python_expert"]}
    assert {n["node"]: (n["specialty"], n["status"]) for n in view["nodes"]} == {
        "1": ("python_expert", "registered"), "2": ("sql_expert", "registered")}
    gateway = RunView(run_dir).adapter("gateway").meta
    assert view["gateway"]["version"] == gateway["version"]
    assert view["gateway"]["coefficients"] == pytest.approx(gateway["coefficients"])
    series = view["series"]
    assert len(series["train_loss|python_expert"]) == on_disk["python_expert"]
    assert len(series["bytes"]) == 6 and all(p[1] > 0 and p[2] > 0 for p in series["bytes"])
    assert series["held_out|python_expert|python_expert"]  # initial and final evaluations
    assert set(view["evals"]) == {"python_expert", "sql_expert"}


def test_a_poll_returns_only_what_was_appended_and_waits_for_a_half_written_line(run_dir):
    client = TestClient(create_console_app(run_dir, None))
    first = _state(client)
    version = next(e["version"] for e in first["experts"] if e["name"] == "sql_expert") + 1
    assert _state(client, first["cursor"])["series"] == {}  # nothing new: no points
    metrics = run_dir / "metrics.jsonl"
    half = ev.to_line(ev.Version(adapter="sql_expert", version=version + 1, elapsed=9.0))
    _append(metrics, _update("2", "sql_expert", version, 7.5, loss=0.25, staleness=2,
                             epsilon=1.5),
            ev.Version(adapter="sql_expert", version=version, elapsed=7.5),
            ev.Rejected(adapter="python_expert", reason="too-stale", detail="staleness 30",
                        node="1"),
            ev.Refused(node="7", reason="quarantined: 3 robust refusals"),
            ev.Refused(node="8", reason="wrong LoRA signature"),
            ev.NodeError(node="1", message_kind="train", code=5, reason="node unavailable"),
            ev.Load(elapsed=8.0, window=30.0, replies=12, pulls=40, max_batch=2, busy=0.25,
                    background=1, in_flight=3),
            tail=half[:25])  # the server is in the middle of writing this line
    second = _state(client, first["cursor"])
    assert second["reset"] is False
    assert second["series"]["train_loss|sql_expert"] == [[7.5, 0.25]]
    assert second["series"]["bytes"] == [[7.5, 600, 1000]]
    assert second["series"]["load"] == [[8.0, 0.4, 0.25, 3, 1]]
    assert "held_out|sql_expert|sql_expert" not in second["series"]
    sql = next(e for e in second["experts"] if e["name"] == "sql_expert")
    assert sql["version"] == version
    nodes = {n["node"]: n for n in second["nodes"]}
    assert nodes["2"]["staleness"] == 2 and nodes["2"]["epsilon"] == 1.5
    assert (nodes["7"]["status"], nodes["8"]["status"]) == ("quarantined", "refused")
    assert nodes["1"]["status"] == "lost" and "node unavailable" in nodes["1"]["reason"]
    assert second["rejected"]["by_reason"] == {"too-stale": 1}
    assert second["rejected"]["recent"][0]["detail"] == "staleness 30"
    assert "busy 25%" in second["load"]["line"] and "12 replies" in second["load"]["line"]
    with metrics.open("a", encoding="utf-8") as fh:  # the line completes
        fh.write(half[25:] + "\n")
    third = _state(client, second["cursor"])
    assert third["series"] == {"version|sql_expert": [[9.0, version + 1]]}
    assert next(e for e in third["experts"] if e["name"] == "sql_expert")["version"] == \
        version + 1


def test_a_rewritten_file_or_a_new_latest_run_starts_the_page_over(tmp_path):
    nodes = {1: make_node("python_expert"), 2: make_node("sql_expert")}
    run(tmp_path / "a", nodes, **{"run.max-updates": 2})
    client = TestClient(create_console_app(tmp_path / "a" / "latest", None))
    first = _state(client)
    metrics = tmp_path / "a" / "run" / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join(lines[:3]))  # shorter than what was read: a new file
    again = _state(client, first["cursor"])
    assert again["reset"] is True and again["cursor"] != first["cursor"]
    assert again["run"]["updates"] == 0
    link = tmp_path / "a" / "latest"
    other = tmp_path / "a" / "second"
    (tmp_path / "a" / "run").rename(other)  # the run moved: latest dangles, then points there
    link.unlink()
    link.symlink_to("second")
    moved = _state(client, again["cursor"])
    assert moved["reset"] is True and moved["run"]["name"] == "second"


def test_damaged_lines_are_counted_not_fatal(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"event": "start", "time": 1, "strategy": "fedasync", "nodes": 2}\n'
                       'not json\n[1, 2]\n{"event": "update", "time": 2}\n'
                       '{"event": "from-the-future", "time": 3}\n')
    tail = EventTail(metrics)
    events, reset = tail.read_new()
    assert [type(e) for e in events] == [ev.Start] and not reset
    assert tail.damaged == 3  # not JSON, not an object, an update without its fields
    client = TestClient(create_console_app(tmp_path, None))
    view = _state(client)
    assert view["run"]["damaged_lines"] == 3 and view["experts"] == [] \
        and view["gateway"] is None


def test_the_key_guards_the_data_not_the_page(run_dir):
    client = TestClient(create_console_app(run_dir, "s3cret-key"))
    page = client.get("/console/")
    assert page.status_code == 200 and "console.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-key"}):
        r = client.get("/console/api/state", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "run" not in r.json()
    assert client.get("/console/api/state?key=s3cret-key").status_code == 401  # header only
    view = _state(client, Authorization="Bearer s3cret-key")
    assert view["run"]["updates"] == 6
    r = client.get("/?key=s3cret-key", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/console/?key=s3cret-key"


def test_assets_are_served_by_the_package_and_need_nothing_online(run_dir):
    client = TestClient(create_console_app(run_dir, "k"))
    for name, media in ASSETS.items():
        path = "/console/" if name == "console.html" else f"/console/static/{name}"
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"] == media, name
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", r.text.replace(
            "http://www.w3.org/2000/svg", "")), f"{name} loads something from the network"
    assert client.get("/console/static/../app.py").status_code == 404
    assert client.get("/console/static/console.html").status_code == 404
    assert client.get("/health").json() == {"status": "ok"}


def test_mount_console_on_an_app_with_its_own_key_check(run_dir):
    app = FastAPI()

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if (not is_public_console_path(request.url.path)
                and request.headers.get("authorization") != "Bearer k"):
            return JSONResponse({"error": "key"}, status_code=401)
        return await call_next(request)

    @app.get("/v1/models")
    def models():
        return {"data": []}

    mount_console(app, run_dir, "k")
    client = TestClient(app)
    assert client.get("/console/").status_code == 200
    assert client.get("/console/static/console.js").status_code == 200
    assert client.get("/console/api/state").status_code == 401
    assert client.get("/v1/models").status_code == 401
    assert _state(client, Authorization="Bearer k")["run"]["name"] == "run"
    assert not is_public_console_path("/console/api/state")
    assert not is_public_console_path("/console/static/secret.txt")


def test_pointer_files_are_followed(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDMOE_NO_SYMLINKS", "1")
    run(tmp_path, {1: make_node("python_expert"), 2: make_node("sql_expert")},
        **{"run.max-updates": 4})
    assert (tmp_path / "latest.ref").is_file() and not (tmp_path / "latest").exists()
    view = _state(TestClient(create_console_app(tmp_path / "latest", None)))
    assert view["run"]["name"] == "run" and view["gateway"]["version"] >= 1
    assert {e["name"]: e["checkpoint"] for e in view["experts"]} == {
        e.name: e.version for e in RunView(tmp_path / "latest").experts()}


@pytest.mark.parametrize(("argv", "message"), [
    (["{run}", "--port", "0"], "--port must be a whole number in [1, 65535], got '0'"),
    (["{run}", "--port", "65536"], "--port must be"),
    (["{run}", "--port", "80a"], "--port must be"),
    (["{run}", "--api-key", "two words"], "must be printable text without spaces"),
    (["{run}", "--api-key", ""], "must be printable text without spaces"),
    (["{run}/nope"], "run/nope does not exist; check the path"),
])
def test_console_command_refuses_bad_settings(run_dir, capsys, argv, message):
    assert console_main([a.format(run=run_dir) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedmoe: error: ") and message in err, err


def test_console_command_prints_the_url_and_serves(run_dir, capsys, monkeypatch):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.setenv("FEDMOE_API_KEY", "envkey")
    assert console_main([str(run_dir), "--port", "8123", "--host", "0.0.0.0"]) == 0
    out = capsys.readouterr().out
    assert f"{run_dir} on http://0.0.0.0:8123/console/ (API key required" in out
    assert "envkey" not in out  # the key is never printed
    assert served["port"] == 8123 and served["host"] == "0.0.0.0"
    client = TestClient(served["app"])
    assert client.get("/console/api/state").status_code == 401
    assert _state(client, Authorization="Bearer envkey")["run"]["updates"] == 6
    assert console_main(["--help"]) == 0
    assert "fedmoe console" in capsys.readouterr().out


def test_metrics_lines_are_the_events_module_format(run_dir):
    # The console parses each line with events.from_dict: the same objects read_events gives.
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    tail_events, _ = EventTail(run_dir / "metrics.jsonl").read_new()
    assert [ev.to_line(e) for e in tail_events] == [ev.to_line(e) for e in
                                                    ev.read_events(run_dir / "metrics.jsonl")]
    assert len(tail_events) == len([json.loads(x) for x in lines])


def test_nan_and_infinite_losses_reach_the_page_as_null(run_dir):
    client = TestClient(create_console_app(run_dir, None))
    first = _state(client)
    _append(run_dir / "metrics.jsonl", _update("1", "python_expert", 99, 3.0, loss=float("nan")),
            ev.Eval(tag="periodic", domain="sql_expert", elapsed=3.0,
                    losses={"sql_expert": float("inf"), "gateway": 1.5}))
    raw = client.get("/console/api/state", params={"since": first["cursor"]})
    assert raw.status_code == 200 and "NaN" not in raw.text and "Infinity" not in raw.text
    view = raw.json()
    assert view["series"]["train_loss|python_expert"] == [[3.0, None]]
    assert view["evals"]["sql_expert"]["losses"] == {"sql_expert": None, "gateway": 1.5}
