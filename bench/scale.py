"""A federation of many simulated SuperNodes on one machine: memory, throughput, backlog.

Reproduce (about 10 minutes on 2 CPU cores)::

    bash scripts/bench.sh scale                      # 100 nodes, 10 specialties, 180 s
    bash scripts/bench.sh scale --nodes 30 --duration 60

Runs the real job (``fedmoe run``, what ``scripts/run.sh`` runs: a local SuperLink,
``flwr run``, Flower's simulation engine) with ``--nodes`` SuperNodes over
``--specialties`` specialties (specialty ``i`` trains on
``data/<python|sql|docs>.jsonl``, in turn) sharing the default pool of Ray actors
(``SIM_ACTORS``, see ``fedmoe_flwr/tools/actors.py``),
and samples the resident memory of every process of the run once a second.
From the run's ``metrics.jsonl`` and ``summary.json`` it reports updates per
second, the server's time per update, and, per ``load`` window, how many
replies each pull brought and how busy the server was: a backlog shows as
windows whose replies per pull and queued background work keep growing.

Writes ``bench/results/scale.md`` and ``scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from fedmoe_flwr.events import Load, Update, of_kind, read_events

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("python", "sql", "docs")


def tree_rss(root: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (shared pages counted per process)."""
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_federation(args: argparse.Namespace, out_dir: Path, name: str) -> dict:
    """Run ``fedmoe run`` and sample its memory; returns the peak and the wall time."""
    specialties = [f"{DOMAINS[i % 3]}_{i}" for i in range(args.specialties)]
    paths = [f"data/{DOMAINS[i % 3]}.jsonl" for i in range(args.specialties)]
    overrides = {
        "run.specialties": ",".join(specialties), "sim.specialties": ",".join(specialties),
        "sim.data-paths": ",".join(paths),
        "sim.speed-factors": ",".join("1" for _ in specialties),
        "run.duration": float(args.duration), "run.name": name,
        "run.output-dir": str(out_dir), "run.register-timeout": 900.0,
        "train.sync-interval": float(args.sync_interval), "data.max-eval-examples": 8,
        "router.centroid-examples": 16,
    }
    cmd = [str(Path(sys.executable).with_name("fedmoe")), "run"]  # what scripts/run.sh runs
    for key, value in overrides.items():
        cmd += ["--run-config", f"{key}={json.dumps(value)}"]
    env = {**os.environ, "NUM_SUPERNODES": str(args.nodes)}
    if args.actors:
        env["SIM_ACTORS"] = str(args.actors)
    log_path = out_dir / f"{name}.log"
    peak, samples = 0, []
    t0 = time.time()
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        root = psutil.Process(proc.pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(1.0):
                rss = tree_rss(root)
                peak = max(peak, rss)
                samples.append((round(time.time() - t0, 1), rss))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            code = proc.wait(timeout=args.duration + args.slack)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait()
        finally:
            done.set()
            sampler.join()
    if code != 0:
        sys.exit(f"the run failed (exit {code}); see {log_path}")
    return {"peak_rss": peak, "wall_s": time.time() - t0, "samples": samples,
            "log": str(log_path)}


def analyse(run_root: Path) -> dict:
    """Throughput, server step and backlog figures from the run's own records."""
    events = read_events(run_root / "metrics.jsonl")
    summary = json.loads((run_root / "summary.json").read_text())
    updates = list(of_kind(events, Update))
    loads = list(of_kind(events, Load))
    span = max(e.elapsed for e in updates) - min(e.elapsed for e in updates)
    half = len(loads) // 2
    first, second = loads[:half] or loads, loads[half:] or loads

    def mean(rows: list[Load], key: str) -> float:
        return sum(getattr(r, key) for r in rows) / max(len(rows), 1)

    return {
        "nodes_registered": len(summary["nodes"]), "updates": summary["updates"],
        "updates_per_s": len(updates) / span if span > 0 else 0.0,
        "step_ms": summary["server_step_ms"],
        "busy": max((r.busy for r in loads), default=0.0),
        "max_batch": [mean(first, "max_batch"), mean(second, "max_batch")],
        "background": [mean(first, "background"), mean(second, "background")],
        "replies_per_window": [mean(first, "replies"), mean(second, "replies")],
        "versions": {s: e["version"] for s, e in summary["experts"].items()},
        "rejected": summary["rejected"], "errors": summary["errors"],
    }


def main() -> None:
    """Run, analyse, print and write the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--specialties", type=int, default=10)
    ap.add_argument("--duration", type=float, default=180.0, help="seconds of training")
    ap.add_argument("--sync-interval", type=float, default=5.0)
    ap.add_argument("--actors", type=int, default=0, help="0 = the default pool")
    ap.add_argument("--slack", type=float, default=1200.0,
                    help="seconds allowed beyond --duration (start-up, evaluation, drain)")
    args = ap.parse_args()
    state = Path(os.environ.get("FEDMOE_STATE", ROOT / ".fedmoe"))
    out_dir = state / "bench-scale"
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"scale-{time.strftime('%Y%m%d-%H%M%S')}"
    run = run_federation(args, out_dir, name)
    res = analyse(out_dir / name)
    actors = args.actors or int(subprocess.run(
        [sys.executable, "-m", "fedmoe_flwr.tools.actors", str(args.nodes)], cwd=ROOT,
        capture_output=True, text=True, check=True).stdout)
    gib = run["peak_rss"] / 2**30
    step = res["step_ms"]
    rows = [
        ("simulated SuperNodes (registered) / specialties / actors",
         f"{args.nodes} ({res['nodes_registered']}) / {args.specialties} / {actors}"),
        ("training time, sync interval", f"{args.duration:.0f} s, {args.sync_interval:.0f} s"),
        ("peak RSS, all processes of the run", f"{gib:.2f} GiB"),
        ("merged updates; updates/s", f"{res['updates']}; {res['updates_per_s']:.2f}"),
        ("server time per update p50 / p95 / max",
         f"{step.get('p50', 0):.1f} / {step.get('p95', 0):.1f} / {step.get('max', 0):.1f} ms"),
        ("server busy share, worst 30 s window", f"{100 * res['busy']:.1f} %"),
        ("replies per window, first half -> second half",
         "{:.1f} -> {:.1f}".format(*res["replies_per_window"])),
        ("most replies in one pull, first half -> second half",
         "{:.1f} -> {:.1f}".format(*res["max_batch"])),
        ("background jobs queued, first half -> second half",
         "{:.1f} -> {:.1f}".format(*res["background"])),
        ("expert versions (min / max)",
         f"{min(res['versions'].values())} / {max(res['versions'].values())}"),
        ("rejected / error replies", f"{res['rejected'] or 0} / {res['errors'] or 0}"),
    ]
    lines = ["| measure | value |", "|---|---:|", *[f"| {k} | {v} |" for k, v in rows], "",
             f"Ratio: server busy share {100 * res['busy']:.1f} % of wall time "
             f"(a backlog needs 100 %); peak RSS {gib / 8:.2f}x the 8 GiB budget.  "
             f"Run {name}, wall {run['wall_s'] / 60:.1f} min; log {run['log']}."]
    (ROOT / "bench" / "results" / "scale.md").write_text("\n".join(lines) + "\n")
    (ROOT / "bench" / "results" / "scale.json").write_text(json.dumps(
        {"args": vars(args), "actors": actors, **res, "peak_rss": run["peak_rss"],
         "wall_s": run["wall_s"], "rss_samples": run["samples"][::10]}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
