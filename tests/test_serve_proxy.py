"""`fedmoe serve RUN --upstream URL`: the run's router and API in front of another
OpenAI-compatible server, tested against a real upstream (a second `fedmoe serve`)."""

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from fedmoe_flwr.config import ConfigError
from fedmoe_flwr.tools.cli import main
from fedmoe_flwr.tools.proxy import check_upstream
from fedmoe_flwr.tools.untrained_run import EXPERTS, untrained_run
from tests.test_serve_batching import ROOT, free_port, start_serve, stop

SQL = "Write a SQL query that counts the orders per customer in the orders table"
BOTH = "Write the SQL query that lists overdue invoices and the Python function that runs it"


def fake_run(tmp_path, **config):
    """A run directory without a model: tiny stand-in adapters and real n-gram counts."""
    from fedmoe_flwr.config import parse_run_config
    from fedmoe_flwr.routing.centroids import CentroidBook
    from fedmoe_flwr.routing.ngrams import ngram_counts
    from fedmoe_flwr.server.artifacts import RunDirectory

    flat = {"model.name": "qwen2-tiny", **config}
    cfg = parse_run_config(flat)
    run_dir = RunDirectory(tmp_path, "run", cfg.model)
    book = CentroidBook(0)
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_{}.weight"
    for i, (name, domain) in enumerate(EXPERTS.items()):
        weights = {key.format("A"): np.full((8, 16), i, np.float32),
                   key.format("B"): np.zeros((16, 8), np.float32)}
        run_dir.save_adapter(f"experts/{name}", weights, 1, {"version": 1})
        prompts = [json.loads(line)["prompt"] for line in
                   (ROOT / "data" / f"{domain}.jsonl").read_text().splitlines()[:300]]
        book.add_ngrams(i, name, ngram_counts(prompts, cfg.router.ngram_buckets))
    run_dir.write_json("router.json", book.to_json())
    run_dir.write_json("run_config.json", flat)
    run_dir.close()
    return run_dir.root


def test_the_upstream_url_key_and_timeout_are_checked_at_start():
    assert check_upstream("http://127.0.0.1:8000/v1/", None, 120) == "http://127.0.0.1:8000/v1"
    assert check_upstream("https://gpu.example:9000", "k", 1) == "https://gpu.example:9000/v1"
    for url in ("127.0.0.1:8000", "ftp://x/v1", "http://u:p@host/v1", "http://h/v1?x=1", None):
        with pytest.raises(ConfigError, match="--upstream"):
            check_upstream(url, None, 120)
    for timeout in (0, -1, float("nan"), True, 10**6):
        with pytest.raises(ConfigError, match="--upstream-timeout"):
            check_upstream("http://h/v1", None, timeout)
    with pytest.raises(ConfigError, match="upstream key"):
        check_upstream("http://h/v1", "a key", 120)


def test_arrow_cannot_route_through_a_proxy_and_is_refused_at_start(tmp_path, capsys):
    run = fake_run(tmp_path, **{"router.method": "arrow"})
    assert main(["serve", str(run), "--upstream", "http://127.0.0.1:9/v1"]) == 2
    err = capsys.readouterr().err
    assert "arrow" in err and "per token" in err and "without --upstream" in err


def test_ngrams_routing_in_proxy_mode_loads_no_model(tmp_path):
    run = fake_run(tmp_path)
    code = ("import sys; from fedmoe_flwr.server.rundir import RunView; "
            "from fedmoe_flwr.tools.serve_http import create_proxy_app; "
            "from fedmoe_flwr.tools.serve import ChatRequest; "
            f"app = create_proxy_app(RunView({str(run)!r}), 'http://127.0.0.1:9/v1'); "
            "from fedmoe_flwr.tools.proxy import ProxyRouter; "
            f"r = ProxyRouter(RunView({str(run)!r})).route(ChatRequest({{'model': 'auto', "
            f"'messages': [{{'role': 'user', 'content': {SQL!r}}}]}}, ['auto'])); "
            "print(r.experts[0], sorted(m for m in ('torch', 'transformers', 'peft') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split(None, 1) == ["sql_expert", "[]\n"]


# --- a real upstream ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """An upstream `fedmoe serve` (key "up") and a proxy in front of it (key "px")."""
    tmp = tmp_path_factory.mktemp("proxy")
    run = untrained_run(tmp)
    up, up_base = start_serve(run, key="up", log_path=tmp / "upstream.log")
    try:
        px, px_base = start_serve(run, "--upstream", f"{up_base}/v1", "--upstream-key", "up",
                                  key="px", log_path=tmp / "proxy.log")
    except BaseException:
        stop(up)
        raise
    try:
        yield run, up_base, px_base
    finally:
        stop(px)
        stop(up)


def clients(servers):
    import openai

    _, up_base, px_base = servers
    return (openai.OpenAI(base_url=f"{up_base}/v1", api_key="up", max_retries=0),
            openai.OpenAI(base_url=f"{px_base}/v1", api_key="px", max_retries=0))


def ask(client, model, content, **kw):
    return client.chat.completions.create(
        model=model, max_tokens=kw.pop("max_tokens", 20), seed=0,
        messages=[{"role": "user", "content": content}], **kw)


@pytest.mark.slow
def test_models_are_what_the_upstream_serves_with_the_runs_versions(servers):
    _, proxy = clients(servers)
    listed = proxy.models.list().data
    assert [m.id for m in listed] == ["auto", *sorted(EXPERTS), "gateway"]
    assert all(m.model_extra["version"] == 1 for m in listed[1:])
    assert sorted(listed[0].model_extra["routes_to"]) == sorted(EXPERTS)


@pytest.mark.slow
def test_answers_through_the_proxy_equal_the_upstreams_own(servers):
    upstream, proxy = clients(servers)
    for model, content in (("sql_expert", SQL), ("docs_expert", "Document the retry "
                                                                "setting"), ("gateway", "Hi")):
        direct, via = ask(upstream, model, content), ask(proxy, model, content)
        assert via.choices[0].message.content == direct.choices[0].message.content
        assert via.usage == direct.usage and via.model == model
        assert via.choices[0].finish_reason == direct.choices[0].finish_reason
        assert via.model_extra["fedmoe"]["forwarded_to"] == model
    auto = ask(proxy, "auto", SQL)
    assert auto.model == "auto" and auto.model_extra["fedmoe"]["forwarded_to"] == "sql_expert"
    assert auto.choices[0].message.content == ask(upstream, "sql_expert", SQL).choices[0]\
        .message.content
    both = ask(proxy, "auto", BOTH).model_extra["fedmoe"]
    assert len(both["experts"]) == 2 and "went to the best" in both["note"]
    assert both["forwarded_to"] == max(both["weights"], key=both["weights"].get)


@pytest.mark.slow
def test_streams_through_the_proxy_equal_the_upstreams_own(servers):
    upstream, proxy = clients(servers)
    for model in ("python_expert", "auto"):
        prompt = "Write a Python function that reverses a list"
        target = "python_expert"
        direct = list(ask(upstream, target, prompt, max_tokens=24, stream=True))
        via = list(ask(proxy, model, prompt, max_tokens=24, stream=True))
        assert [c.choices[0].delta.content for c in via] == \
            [c.choices[0].delta.content for c in direct]
        assert via[-1].choices[0].finish_reason == direct[-1].choices[0].finish_reason
        assert {c.model for c in via} == {model}
        assert via[-1].model_extra["fedmoe"]["forwarded_to"] == target
        assert via[-1].usage == direct[-1].usage


@pytest.mark.slow
def test_the_proxy_needs_its_own_key_and_forwards_upstream_errors(servers):
    import httpx
    import openai

    _, _, px_base = servers
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{px_base}/v1", api_key="up", max_retries=0).models.list()
    assert httpx.get(f"{px_base}/experts").status_code == 401
    auth = {"Authorization": "Bearer px"}
    assert httpx.get(f"{px_base}/experts/sql_expert", headers=auth).json()["version"] == 1
    _, proxy = clients(servers)
    with pytest.raises(openai.BadRequestError, match="top_p"):  # checked here, as serve does
        ask(proxy, "auto", SQL, top_p=0.5)
    too_long = httpx.post(f"{px_base}/v1/chat/completions", headers=auth, timeout=60, json={
        "model": "sql_expert", "max_tokens": 8,
        "messages": [{"role": "user", "content": "select " * 4000}]})
    err = too_long.json()["error"]  # the upstream's 400, in OpenAI's format
    assert too_long.status_code == 400 and "tokens" in err["message"] and "upstream" in \
        err["message"] and set(err) == {"message", "type", "param", "code"}


@pytest.mark.slow
def test_an_upstream_that_is_down_is_a_502(servers, tmp_path):
    import httpx

    run = servers[0]
    closed = free_port()
    px, base = start_serve(run, "--upstream", f"http://127.0.0.1:{closed}/v1", key=None,
                           log_path=tmp_path / "log")
    try:
        t0 = time.monotonic()
        r = httpx.post(f"{base}/v1/chat/completions", timeout=30, json={
            "model": "auto", "messages": [{"role": "user", "content": SQL}]})
        assert r.status_code == 502 and time.monotonic() - t0 < 10
        assert "unreachable" in r.json()["error"]["message"]
        assert r.json()["error"]["type"] == "server_error"
        assert httpx.get(f"{base}/v1/models", timeout=30).status_code == 502
    finally:
        stop(px)


class Sleepy(BaseHTTPRequestHandler):
    """An upstream that accepts the connection and never answers in time."""

    release = threading.Event()

    def do_POST(self):  # noqa: N802 - http.server's name
        self.release.wait(60)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_a_slow_upstream_is_a_504_within_the_timeout(servers, tmp_path):
    import httpx

    run = servers[0]
    slow = ThreadingHTTPServer(("127.0.0.1", 0), Sleepy)
    slow.daemon_threads = True
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    px, base = start_serve(run, "--upstream", f"http://127.0.0.1:{slow.server_port}/v1",
                           "--upstream-timeout", "2", key=None, log_path=tmp_path / "log")
    try:
        for stream in (False, True):
            t0 = time.monotonic()
            r = httpx.post(f"{base}/v1/chat/completions", timeout=30, json={
                "model": "sql_expert", "stream": stream,
                "messages": [{"role": "user", "content": SQL}]})
            waited = time.monotonic() - t0
            assert r.status_code == 504 and 1.5 < waited < 6, (r.text, waited)
            assert "did not answer within 2 s" in r.json()["error"]["message"]
    finally:
        Sleepy.release.set()
        stop(px)
        slow.shutdown()
        slow.server_close()


@pytest.mark.slow
def test_both_serve_modes_carry_the_live_console_behind_their_key(servers):
    import httpx

    _, up_base, px_base = servers
    for base, key in ((up_base.removesuffix("/v1"), "up"), (px_base.removesuffix("/v1"), "px")):
        assert httpx.get(f"{base}/console/").status_code == 200  # the page holds no run data
        assert httpx.get(f"{base}/console/api/state").status_code == 401
        state = httpx.get(f"{base}/console/api/state",
                          headers={"Authorization": f"Bearer {key}"}).json()
        assert "sql_expert" in {e["name"] for e in state["experts"]}, state["experts"]
