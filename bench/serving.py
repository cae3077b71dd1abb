"""Serving throughput and latency: one request at a time against batched generation.

Reproduce (about 15 minutes on 2 CPU cores)::

    bash scripts/bench.sh serving                       # qwen2-tiny and smollm2-135m
    bash scripts/bench.sh serving --models qwen2-tiny --max-tokens 16

For each model, two real ``fedmoe serve`` processes on the same run, side by
side: ``--max-batch 1`` (every request alone, the path before batching) and
the default batched server (``--max-batch 16``).  Closed-loop clients (1, 4
and 16 of them, each sending its next request when the last is answered) send
fixed prompts to fixed adapters (the three experts, the gateway and ``auto``),
greedy, with a fixed ``max_tokens``; the two servers are measured one after
the other at each client count, never at the same time.  Reported: generated
tokens per second (all clients together), p50 and p95 latency per request,
the mean rows per batch, and whether both servers gave the same answers.
Then a proxy (``fedmoe serve --upstream``) in front of the batched server:
the latency it adds, with requests sent alternately to it and to its upstream.

Run directories: ``qwen2-tiny`` gets a minimal run written with the project's
own code (seeded random experts, no training: throughput does not depend on
what the experts learned); ``smollm2-135m`` uses the real-model benchmark's
trained run (``.fedmoe/bench-real-model/experts``) when it exists, else a
minimal run whose experts are the base model itself.  Writes
``bench/results/serving.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from federation_runs import ROOT, publish

FEDMOE = Path(sys.executable).parent / "fedmoe"
REAL_RUN = ROOT / ".fedmoe" / "bench-real-model" / "experts"
PROMPTS = [
    ("sql_expert", "Tables: orders(id, customer_id, amount). Write a SQL query that returns "
                   "the total amount per customer_id."),
    ("python_expert", "Write a Python function `is_palindrome(s)` that ignores case and "
                      "spaces."),
    ("docs_expert", "Write a docstring for a function that retries an HTTP request three "
                    "times."),
    ("auto", "Write a SQL query that lists the customers who placed no order in 2024."),
    ("gateway", "Explain what a LoRA adapter is in two sentences."),
    ("auto", "Write a Python function that reads a CSV file and returns the rows as dicts."),
    ("sql_expert", "Write a SQL query that counts the orders per day."),
    ("auto", "Document the retry setting of the configuration file."),
]


def run_for(model: str, work: Path) -> tuple[Path, str]:
    """The run directory a model is served from, and where it came from."""
    if model == "smollm2-135m" and REAL_RUN.is_dir():
        return REAL_RUN, f"trained run {REAL_RUN.relative_to(ROOT)}"
    scale = 0.5 if model == "qwen2-tiny" else 0.0
    extra = {} if model == "qwen2-tiny" else {"model.quantization": 0}
    code = (f"from pathlib import Path; from fedmoe_flwr.tools.untrained_run import "
            f"untrained_run; print(untrained_run(Path({str(work)!r}), {model!r}, {scale}, "
            f"**{extra!r}))")  # in a child: this process never holds a model
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    return Path(out), ("minimal run, random experts" if scale else
                       "minimal run, experts = base model")


class Server:
    """A ``fedmoe serve`` process on a free port, ended with its process group."""

    def __init__(self, run: Path, *args: str, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen([str(FEDMOE), "serve", str(run), "--port", str(self.port),
                                      *args], cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float = 600) -> Server:
        """Block until ``/health`` answers."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"fedmoe serve exited {self.proc.returncode}; see "
                                 f"{self._log.name}")
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"fedmoe serve did not start; see {self._log.name}")

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL if it lingers."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._log.close()


def post(http: Any, model: str, prompt: str, max_tokens: int) -> tuple[float, dict]:
    """One greedy request; its latency and the answer body."""
    t0 = time.perf_counter()
    r = http.post("/v1/chat/completions", json={
        "model": model, "max_tokens": max_tokens, "temperature": 0,
        "messages": [{"role": "user", "content": prompt}]})
    if r.status_code != 200:
        raise SystemExit(f"{r.status_code}: {r.text[:300]}")
    return time.perf_counter() - t0, r.json()


def load(base: str, clients: int, per_client: int, max_tokens: int) -> dict[str, Any]:
    """``clients`` closed-loop clients, ``per_client`` requests each; the totals."""
    import httpx

    lat: list[float] = []
    tokens, rows, answers, errors = [0], [], {}, []
    lock, start = threading.Lock(), threading.Barrier(clients + 1)

    def client(i: int) -> None:
        with httpx.Client(base_url=base, timeout=1200) as http:
            start.wait()
            for k in range(per_client):
                model, prompt = PROMPTS[(i + k * clients) % len(PROMPTS)]
                try:
                    dt, body = post(http, model, prompt, max_tokens)
                except BaseException as err:  # reported after the run
                    errors.append(err)
                    return
                with lock:
                    lat.append(dt)
                    tokens[0] += body["usage"]["completion_tokens"]
                    rows.append(body["fedmoe"].get("batch_rows", 1))
                    answers[f"{model}: {prompt}"] = body["choices"][0]["message"]["content"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"a client failed: {errors[0]}")
    return {"clients": clients, "requests": len(lat), "tokens": tokens[0], "wall_s": wall,
            "tok_s": tokens[0] / wall, "p50_s": statistics.median(lat),
            "p95_s": percentile(lat, 95), "rows_mean": statistics.fmean(rows),
            "answers": answers}


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile, linear between order statistics (numpy's default)."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    return xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (pos - lo)


def proxy_overhead(direct: str, proxied: str, n: int, max_tokens: int) -> dict[str, float]:
    """Latency through the proxy against its upstream, requests alternating between them."""
    import httpx

    got: dict[str, list[float]] = {"direct": [], "proxy": []}
    with httpx.Client(base_url=direct, timeout=600) as d, \
            httpx.Client(base_url=proxied, timeout=600) as p:
        for k in range(n + 1):
            model, prompt = PROMPTS[k % len(PROMPTS)]
            for name, http in (("direct", d), ("proxy", p)) if k % 2 else \
                    (("proxy", p), ("direct", d)):
                dt, _ = post(http, model, prompt, max_tokens)
                if k:  # the first round warms both up
                    got[name].append(dt)
    diffs = [a - b for a, b in zip(got["proxy"], got["direct"], strict=True)]
    return {"requests": n, "direct_p50_ms": 1e3 * statistics.median(got["direct"]),
            "proxy_p50_ms": 1e3 * statistics.median(got["proxy"]),
            "added_p50_ms": 1e3 * statistics.median(diffs),
            "added_mean_ms": 1e3 * statistics.fmean(diffs)}


def bench_model(model: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Both servers on one run at every client count, then the proxy in front."""
    run, source = run_for(model, work / model)
    print(f"{model}: {source} ({run})", flush=True)
    one = Server(run, "--max-batch", "1", log=work / f"{model}-one.log")
    batched = Server(run, "--max-batch", str(args.max_batch), log=work / f"{model}-batch.log")
    servers = [one, batched]
    try:
        for s in servers:
            s.wait()
            load(s.base, 1, 1, args.max_tokens)  # warm: adapters built, caches filled
        rows = []
        for clients in args.clients:
            per = max(1, args.requests // clients)
            for name, s in (("one at a time", one), ("batched", batched)):
                r = load(s.base, clients, per, args.max_tokens)
                rows.append({"model": model, "server": name, **r})
                print(f"  {name:13s} {clients:2d} clients: {r['tok_s']:7.1f} tok/s, p50 "
                      f"{r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s, rows {r['rows_mean']:.1f}",
                      flush=True)
        proxy = Server(run, "--upstream", f"{batched.base}/v1", log=work / f"{model}-px.log")
        servers.append(proxy)
        overhead = proxy_overhead(batched.base, proxy.wait().base, args.proxy_requests,
                                  args.max_tokens)
        print(f"  proxy adds {overhead['added_p50_ms']:.1f} ms (p50)", flush=True)
    finally:
        for s in servers:
            s.stop()
    return {"model": model, "run": source, "rows": rows, "proxy": overhead}


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """The Markdown tables and the verdict against the goal (>= 3x at 16, p95 no worse)."""
    lines = [f"Greedy, `max_tokens` {args.max_tokens}, {len(PROMPTS)} fixed prompts over the "
             f"three experts, the gateway and `auto`; closed-loop clients; "
             f"{platform.machine()}, {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}.",
             "", "| model | clients | server | requests | tokens/s | p50 latency | "
             "p95 latency | rows per batch | same answers |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    verdicts = []
    for res in results:
        by = {(r["clients"], r["server"]): r for r in res["rows"]}
        for r in res["rows"]:
            other = by[(r["clients"], "one at a time")]["answers"]
            same = sum(r["answers"].get(k) == v for k, v in other.items())
            lines.append(f"| {res['model']} | {r['clients']} | {r['server']} | "
                         f"{r['requests']} | {r['tok_s']:.1f} | {r['p50_s']:.2f} s | "
                         f"{r['p95_s']:.2f} s | {r['rows_mean']:.1f} | {same}/{len(other)} |")
        top = max(c for c, _ in by)
        one, bat = by[(top, "one at a time")], by[(top, "batched")]
        speed, p95 = bat["tok_s"] / one["tok_s"], bat["p95_s"] / one["p95_s"]
        met = "met" if speed >= 3 and p95 <= 1 else "NOT met"
        verdicts.append(f"- {res['model']} ({res['run']}): at {top} clients batched gives "
                        f"{speed:.1f}x the tokens/s of one at a time, p95 x{p95:.2f}: goal "
                        f"(>= 3x, p95 no worse) {met}.")
    lines += ["", *verdicts, "", "Proxy (`fedmoe serve --upstream`) in front of the batched "
              "server, one client, requests alternating between the two:", "",
              "| model | requests | upstream p50 | through proxy p50 | added p50 | "
              "added mean |", "|---|---:|---:|---:|---:|---:|"]
    for res in results:
        p = res["proxy"]
        lines.append(f"| {res['model']} | {p['requests']} | {p['direct_p50_ms']:.0f} ms | "
                     f"{p['proxy_p50_ms']:.0f} ms | {p['added_p50_ms']:.1f} ms | "
                     f"{p['added_mean_ms']:.1f} ms |")
    return lines


def main() -> None:
    """Every model, then the tables; results to bench/results/serving.{md,json}."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="qwen2-tiny,smollm2-135m")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=32,
                    help="requests per measurement (split across the clients)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--proxy-requests", type=int, default=16)
    ap.add_argument("--name", default="serving", help="bench/results/<name>.md")
    ap.add_argument("--work", type=Path, default=ROOT / ".fedmoe" / "bench-serving",
                    help="minimal run directories and the servers' logs")
    args = ap.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    os.environ.setdefault("FEDMOE_CACHE", str(ROOT / ".fedmoe" / "cache"))
    shutil.rmtree(args.work, ignore_errors=True)  # minimal runs and server logs of last time
    args.work.mkdir(parents=True)
    results = [bench_model(m.strip(), args, args.work) for m in args.models.split(",")]
    lines = report(results, args)
    for res in results:
        for r in res["rows"]:
            r.pop("answers")
    (ROOT / "bench" / "results" / f"{args.name}.json").write_text(
        json.dumps({"settings": {k: str(v) if isinstance(v, Path) else v
                                 for k, v in vars(args).items()}, "results": results},
                   indent=2))
    publish(args.name, lines)


if __name__ == "__main__":
    main()
