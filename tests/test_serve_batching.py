"""`fedmoe serve` generates the requests that arrive together in one batch, one adapter per
row: greedy answers identical to one at a time, each row stopped at its own limit and
answered the step it ends, its own token stream, a bounded queue (503, never a hang)."""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from fedmoe_flwr.tools.serve import ApiError, ChatRequest, check_batching
from fedmoe_flwr.tools.untrained_run import EXPERTS, untrained_run

ROOT = Path(__file__).resolve().parents[1]
FEDMOE = Path(sys.executable).parent / "fedmoe"


def chat(content, model="auto", system=None, **body):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": content}]
    return ChatRequest({"model": model, "messages": messages, **body},
                       ["auto", *EXPERTS, "gateway"])


class Collect:
    """A job's events, in order, from the generation thread."""

    def __init__(self, log, name):
        self.log, self.name, self.pieces = log, name, []
        self.answer = self.error = None

    def __call__(self, kind, value):
        self.log.append((self.name, kind))
        if kind == "text":
            self.pieces.append(value)
        elif kind == "done":
            self.answer, self.versions, self.rows = value
        else:
            self.error = value


# --- without a model -----------------------------------------------------------------------

class ByteTokenizer:
    """Token i is byte i: decoding is UTF-8 with replacement, the hard case for streams."""

    eos_token_id = 256

    def decode(self, ids, skip_special_tokens=True):
        return bytes(i for i in ids if i < 256).decode("utf-8", "replace")


def test_row_text_never_splits_a_character_and_joins_to_the_whole():
    from fedmoe_flwr.tools.batching import RowText

    text = "naïve → 数据库 ✓ \U0001F600 done"
    ids = list(text.encode())
    row = RowText(ByteTokenizer())
    pieces = [row.push(i) for i in ids]
    pieces.append(row.flush())
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert [p for p in pieces if p][:3] == ["n", "a", "ï"]  # a 2-byte character, whole
    cut = RowText(ByteTokenizer())  # an answer that ends inside a character
    got = "".join(cut.push(i) for i in "ok é".encode()[:-1]) + cut.flush()
    assert got == "ok \ufffd"


def test_groups_keep_every_batch_inside_the_context():
    from fedmoe_flwr.tools.batching import Row, fitting_groups

    def row(prompt, new):
        job = SimpleNamespace(ids=[1] * prompt, req=SimpleNamespace(max_tokens=new))
        return Row(job, None, "x:a", "a")

    rows = [row(900, 10), row(20, 1000), row(50, 50), row(10, 1000)]
    groups = fitting_groups(rows, 1024)
    assert [[r.job.req.max_tokens for r in g] for g in groups] == [[10, 50], [1000, 1000]]
    for g in groups:
        assert max(len(r.job.ids) for r in g) + max(r.job.req.max_tokens for r in g) <= 1024


def test_a_full_queue_refuses_at_once():
    from fedmoe_flwr.tools.batching import Batcher, Job, Overloaded

    batcher = Batcher(SimpleNamespace(), lambda req: None, max_queue=2, start=False)
    for _ in range(2):
        batcher.submit(Job(None, [], lambda *_: None))
    # Nothing consumes the queue (start=False): a submit that waited for room would never
    # return, so getting Overloaded back at all shows it refuses without waiting.
    with pytest.raises(Overloaded, match="--max-queue 2"):
        batcher.submit(Job(None, [], lambda *_: None))



def test_a_batch_gathers_requests_while_they_keep_coming():
    """Requests a fraction of a window apart join one batch, even past one window in all
    (what the clients of a batch that just ended do); the next one after a quiet window
    starts a batch of its own.  Gaps are 0.2 s of a 0.5 s window: scheduling noise on a
    busy machine would have to exceed 0.3 s to split the batch."""
    from fedmoe_flwr.tools.batching import Batcher, Job

    batcher = Batcher(SimpleNamespace(), lambda req: None, window=0.5, start=False)
    jobs = [Job(i, [], lambda *_: None) for i in range(6)]

    def arrive():
        for job in jobs[:5]:
            batcher.submit(job)
            time.sleep(0.2)  # 5 jobs over 0.8 s: a fixed 0.5 s window would cut after 3
        time.sleep(1.5)  # a quiet spell of three windows
        batcher.submit(jobs[5])

    feeder = threading.Thread(target=arrive)
    feeder.start()
    first = batcher.take()
    second = batcher.take()
    feeder.join()
    assert [j.req for j in first] == [0, 1, 2, 3, 4] and [j.req for j in second] == [5]

def test_batching_settings_are_checked_before_anything_loads(tmp_path, capsys):
    from fedmoe_flwr.config import ConfigError
    from fedmoe_flwr.tools.cli import main

    for args in ((0, 64, 5.0), (16, 0, 5.0), (True, 64, 5.0), (16, 64, -1.0),
                 (16, 64, float("nan")), (10**6, 64, 5.0)):
        with pytest.raises(ConfigError):
            check_batching(*args)
    check_batching(1, 1, 0.0)
    assert main(["serve", str(tmp_path), "--max-batch", "0"]) == 2
    assert "--max-batch must be" in capsys.readouterr().err


# --- the tiny model, in this process -------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from fedmoe_flwr.server.rundir import RunView
    from fedmoe_flwr.tools.inference import Assistant, run_app_config

    run = RunView(untrained_run(tmp_path_factory.mktemp("batching")))
    return run, Assistant(run, run_app_config(run))


# Different adapters, lengths, limits (1 token too), a system message, a two-expert mix.
CASES = [
    (chat("Write a SQL query that counts the orders per customer", "sql_expert",
          max_tokens=24), None),
    (chat("Write a Python function that reverses a list", "python_expert", max_tokens=1),
     None),
    (chat("Explain what the retry setting does in the configuration docs, briefly please",
          "docs_expert", max_tokens=40, stream=True), None),
    (chat("Summarise", "gateway", max_tokens=16), None),
    (chat("Write a SQL query", "sql_expert", system="You answer in SQLite.", max_tokens=30,
          stream=True), None),
    (chat("Write the SQL query that lists overdue invoices and the Python function that "
          "runs it", max_tokens=20), "mix"),
    (chat("Write a docstring for the parser and a SQL query that counts rows", max_tokens=12,
          stream=True), "mix"),
]


def alone(assistant, served_route, req):
    return assistant.ask(req.prompt, max_new_tokens=req.max_tokens,
                         temperature=req.temperature, seed=req.seed,
                         route=served_route(req), conversation=req.messages)


def served_route(assistant):
    from fedmoe_flwr.tools.serve import ServedRun

    stub = SimpleNamespace(assistant=assistant)
    return lambda req: ServedRun.route(stub, req)


@pytest.mark.slow
def test_batched_greedy_answers_equal_one_at_a_time(tiny):
    from fedmoe_flwr.tools.batching import Batcher, Job

    run, assistant = tiny
    route = served_route(assistant)
    for req, kind in CASES:
        if kind == "mix":  # the router picks two experts for these (mixed with weights)
            assert len(route(req).experts) == 2, route(req)
    want = [alone(assistant, route, req) for req, _ in CASES]
    batcher = Batcher(assistant, route, max_batch=16, start=False)
    log = []
    sinks = [Collect(log, i) for i in range(len(CASES))]
    jobs = [Job(req, assistant.encode_chat(req.messages, req.max_tokens)[0].tolist(), sink)
            for (req, _), sink in zip(CASES, sinks, strict=True)]
    batcher.serve(jobs)
    assert batcher.batches == [len(CASES)]  # one batch, every adapter in it
    for (req, _), w, got in zip(CASES, want, sinks, strict=True):
        a = got.answer
        assert got.error is None
        assert (a.text, a.prompt_tokens, a.completion_tokens, a.finish_reason, a.adapter) == \
            (w.text, w.prompt_tokens, w.completion_tokens, w.finish_reason, w.adapter), req.prompt
        assert got.rows == len(CASES)
        if req.stream:
            assert "".join(got.pieces).strip() == a.text and len(got.pieces) > 1
        else:
            assert got.pieces == []
    # The one-token row was answered the step it ended, while the others still generated.
    done = [name for name, kind in log if kind == "done"]
    assert done[0] == 1 and log.index((1, "done")) < log.index((2, "done"))
    assert (2, "text") in log[log.index((1, "done")):]
    assert sum(k.startswith("x:mixslot-") for k in assistant.model.peft_config) == 2


@pytest.mark.slow
def test_sampling_goes_alone_and_a_mix_slot_is_reused(tiny):
    from fedmoe_flwr.tools.batching import Batcher, Job

    run, assistant = tiny
    route = served_route(assistant)
    hot = chat("Write a Python function that adds numbers", "python_expert", max_tokens=12,
               temperature=0.9, seed=7)
    cold = chat("Write a SQL query that counts rows", "sql_expert", max_tokens=8)
    mix = CASES[5][0]
    want = [alone(assistant, route, r) for r in (hot, cold, mix)]
    batcher = Batcher(assistant, route, start=False)
    for _ in range(2):  # the second time the mix's slot is found, not rebuilt
        log = []
        sinks = [Collect(log, i) for i in range(3)]
        batcher.serve([Job(r, assistant.encode_chat(r.messages, r.max_tokens)[0].tolist(), s)
                       for r, s in zip((hot, cold, mix), sinks, strict=True)])
        assert [s.answer.text for s in sinks] == [w.text for w in want]
        assert [s.rows for s in sinks] == [1, 2, 2]  # sampled alone; the greedy two together
    assert len(batcher.slots._mixes) == 1


@pytest.mark.slow
def test_one_at_a_time_is_the_unbatched_path_and_cancel_stops_a_row(tiny):
    from fedmoe_flwr.tools.batching import Batcher, Job

    run, assistant = tiny
    route = served_route(assistant)
    reqs = [chat("Write a SQL query that counts rows", "sql_expert", max_tokens=6),
            chat("Write a docstring", "docs_expert", max_tokens=6, stream=True)]
    one = Batcher(assistant, route, max_batch=1, start=False)
    log = []
    sinks = [Collect(log, i) for i in range(2)]
    one.serve([Job(r, assistant.encode_chat(r.messages, r.max_tokens)[0].tolist(), s)
               for r, s in zip(reqs, sinks, strict=True)])
    assert one.batches == [] and [s.rows for s in sinks] == [1, 1]
    assert "".join(sinks[1].pieces).strip() == sinks[1].answer.text
    left = Job(reqs[1], assistant.encode_chat(reqs[1].messages, 6)[0].tolist(),
               Collect([], "x"))
    left.cancelled = True
    stays = Collect([], "y")
    Batcher(assistant, route, start=False).serve(
        [left, Job(reqs[0], assistant.encode_chat(reqs[0].messages, 6)[0].tolist(), stays)])
    assert left.emit.answer is None and stays.answer.text == sinks[0].answer.text


# --- a real `fedmoe serve` process ----------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(run, *args, key="k3y", log_path=None):
    """`fedmoe serve` on a free port; returns (process, base URL) once /health answers."""
    import httpx

    port = free_port()
    env = {**os.environ, "FEDMOE_API_KEY": key} if key else dict(os.environ)
    log = open(log_path or os.devnull, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([str(FEDMOE), "serve", str(run), "--port", str(port), *args],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop(proc)
            raise AssertionError(f"fedmoe serve exited {proc.returncode}: "
                                 f"{Path(log_path).read_text()[-2000:] if log_path else ''}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(proc)
    raise AssertionError("fedmoe serve did not come up")


def stop(proc):
    """End the server's whole process group, and wait for it."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.mark.slow
def test_concurrent_clients_share_batches_and_get_their_own_answers(tiny, tmp_path):
    import openai

    run, assistant = tiny
    route = served_route(assistant)
    questions = [(req.model, req.messages, req.max_tokens, req.stream) for req, _ in CASES]
    want = [alone(assistant, route, req) for req, _ in CASES]
    proc, base = start_serve(run.root, "--batch-window-ms", "50", log_path=tmp_path / "log")
    try:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="k3y", max_retries=0)
        results: queue.Queue = queue.Queue()

        def ask(i, model, messages, max_tokens, stream):
            try:
                if stream:
                    chunks = list(client.chat.completions.create(
                        model=model, messages=messages, max_tokens=max_tokens, stream=True))
                    text = "".join(c.choices[0].delta.content or "" for c in chunks)
                    results.put((i, text.strip(), chunks[-1].usage.completion_tokens,
                                 chunks[-1].choices[0].finish_reason,
                                 chunks[-1].model_extra["fedmoe"]))
                else:
                    r = client.chat.completions.create(model=model, messages=messages,
                                                       max_tokens=max_tokens)
                    results.put((i, r.choices[0].message.content, r.usage.completion_tokens,
                                 r.choices[0].finish_reason, r.model_extra["fedmoe"]))
            except Exception as err:  # reported below
                results.put((i, err, None, None, None))

        threads = [threading.Thread(target=ask, args=(i, *q)) for i, q in enumerate(questions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        got = sorted(results.get_nowait() for _ in threads)
        for (i, text, tokens, reason, used), w in zip(got, want, strict=True):
            assert (text, tokens, reason) == (w.text, w.completion_tokens, w.finish_reason), i
            assert used["adapter"] == w.adapter
        assert max(used["batch_rows"] for *_, used in got) > 1  # they did share a batch
    finally:
        stop(proc)


@pytest.mark.slow
def test_a_full_queue_is_a_503_in_openai_format(tiny, tmp_path):
    import httpx

    run, _ = tiny
    proc, base = start_serve(run.root, "--max-batch", "1", "--max-queue", "1", key=None,
                             log_path=tmp_path / "log")
    try:
        body = {"model": "sql_expert", "max_tokens": 400,
                "messages": [{"role": "user", "content": "Write a long SQL query"}]}
        with httpx.Client(base_url=base, timeout=120) as http:
            codes: queue.Queue = queue.Queue()

            def post():
                t0 = time.monotonic()
                r = http.post("/v1/chat/completions", json=body)
                codes.put((r.status_code, r.json(), time.monotonic() - t0))

            threads = [threading.Thread(target=post) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            replies = [codes.get_nowait() for _ in threads]
        busy = [(body, dt) for code, body, dt in replies if code == 503]
        assert busy and any(code == 200 for code, _, _ in replies)
        for err, dt in busy:
            assert set(err["error"]) == {"message", "type", "param", "code"}
            assert err["error"]["type"] == "server_error" and "--max-queue 1" in \
                err["error"]["message"]
            assert dt < 5  # refused at once, never left hanging
    finally:
        stop(proc)


def test_api_error_is_openai_shaped():
    err = ApiError(503, "busy", "server_error")
    assert err.body() == {"error": {"message": "busy", "type": "server_error", "param": None,
                                    "code": None}}
