"""Overlapped training (``train.overlap``) against stop-and-wait, in a real deployment.

Reproduce (about 20 minutes on 2 CPU cores)::

    bash scripts/bench.sh overlap
    bash scripts/bench.sh overlap --intervals 10 --duration 90
    bash scripts/bench.sh overlap --intervals 30 --repeats 3 --modes stop-and-wait,overlap-carry

For each ``train.sync-interval`` and each mode -- ``stop-and-wait`` (a warm
worker trains the interval, replies, and idles until the next message),
``overlap-carry`` and ``overlap-replace`` (``train.overlap = true`` with each
``train.overlap-rule``) -- the benchmark deploys an insecure SuperLink and
three SuperNodes with warm workers on 127.0.0.1 (tiny model, one specialty
each, the same data and seed), runs the federation for the same wall-clock
budget, stops everything it started and reads ``metrics.jsonl`` and
``summary.json``:

- node time training: per node, the seconds it trained over the span from its
  first train message to its last reply (all nodes summed);
- time between replies: the median gap between two replies of one node, which
  should sit at the sync interval;
- in flight: the median seconds of each update trained while the previous one
  travelled (0 in stop-and-wait);
- held-out loss of each expert on its own domain at the end of the budget.

Writes ``bench/results/overlap.md`` and ``overlap.json``.  With ``--repeats N`` the
cases run N times, the modes interleaved within each repeat (so a machine that slows down
during the benchmark slows every mode alike), and the table, written to
``overlap_repeats.md`` and ``.json``, gives each run and the mean over the N runs.

``--simulation`` runs the other arm instead: scenario (b) of ``async_vs_sync.py``
(six simulated nodes, two per specialty, one of each pair 4x slower, time dilated
to fit the cores, one Flower actor per node) with FedAsync stop-and-wait against
``train.overlap`` (carry and replace), the same wall-clock budget and sync
interval, and FedAvg as the target row.  Each version is scored by the
benchmark's own held-out scorer.  Writes ``bench/results/overlap_sim.md`` and
``overlap_sim.json``::

    bash scripts/bench.sh overlap --simulation --intervals 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from warm_vs_cold import NODES, deploy, free_port  # noqa: E402

from fedmoe_flwr.events import Update, of_kind, read_events  # noqa: E402

MODES = {"stop-and-wait": "train.overlap=false",
         "overlap-carry": "train.overlap=true train.overlap-rule='carry'",
         "overlap-replace": "train.overlap=true train.overlap-rule='replace'"}


def run_case(mode: str, interval: float, duration: float, work: Path, repeat: int = 0) -> Path:
    """One deployment in one mode; returns its run directory (a fresh one every time)."""
    import os
    import shutil

    state = work / (f"{mode}-{interval:g}" + (f"-r{repeat}" if repeat else ""))
    shutil.rmtree(state, ignore_errors=True)  # this benchmark's own case directory
    env = {**os.environ, "FEDMOE_DEPLOY": str(state / "deploy"),
           "FEDMOE_SUPERLINK_PORT": str(free_port())}
    out = state / "out"
    try:
        deploy(env, "superlink", "start", "--insecure")
        for name, (specialty, data) in NODES.items():
            deploy(env, "supernode", "start", name, "--insecure", "--specialty", specialty,
                   "--data", data)
        deploy(env, "submit", "--run-config",
               f"run.duration={duration} train.sync-interval={interval} run.name='b' "
               f"run.output-dir='{out}' run.seed=7 {MODES[mode]}", timeout=duration + 900)
    finally:
        deploy(env, "stop-all", check=False)
    return out / "b"


def summarise(run: Path) -> dict:
    """The case's row: training share, gaps between replies, in-flight time, losses."""
    updates = list(of_kind(read_events(run / "metrics.jsonl"), Update))
    by_node: dict[str, list[Update]] = defaultdict(list)
    for u in updates:
        by_node[u.node].append(u)
    trained = span = 0.0
    gaps: list[float] = []
    for ups in by_node.values():
        ups.sort(key=lambda u: u.time)
        start = ups[0].time - ups[0].round_trip  # the first train message's push
        trained += sum(u.train_seconds for u in ups)
        span += ups[-1].time - start
        gaps += [b.time - a.time for a, b in zip(ups, ups[1:], strict=False)]
    summary = json.loads((run / "summary.json").read_text())
    final = summary["eval"]["final"]
    losses = {d: final[d][d] for d in sorted(final)}
    return {"updates": len(updates), "share": trained / span if span else 0.0,
            "gap": statistics.median(gaps) if gaps else float("nan"),
            "in_flight": statistics.median(u.in_flight_seconds for u in updates),
            "train": statistics.median(u.train_seconds for u in updates),
            "losses": losses}


def table(rows: list[dict]) -> str:
    """The Markdown table of ``rows`` (one per case, or one per mean)."""
    domains = sorted(rows[0]["losses"])
    run_col = "repeat" in rows[0]
    lines = [("| run " if run_col else "") + "| sync-interval | mode | updates | node time "
             "training | time between replies (median) | in flight (median) | "
             + " | ".join(f"{d} loss" for d in domains) + " |",
             ("|---:" if run_col else "") + "|---:|---|---:|---:|---:|---:|"
             + "---:|" * len(domains)]
    for r in rows:
        lines.append((f"| {r['repeat']} " if run_col else "")
                     + f"| {r['interval']:g} s | {r['mode']} | {_count(r['updates'])} | "
                     f"{100 * r['share']:.0f}% | {r['gap']:.1f} s | {r['in_flight']:.1f} s | "
                     + " | ".join(f"{r['losses'][d]:.3f}" for d in domains) + " |")
    return "\n".join(lines)


def _count(n: float) -> str:
    """A count, or a mean of counts: ``84``, ``75.7``."""
    return f"{n:.0f}" if n == int(n) else f"{n:.1f}"


def means(rows: list[dict]) -> list[dict]:
    """One row per (interval, mode): the mean of its repeats."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["interval"], r["mode"])].append(r)
    out = []
    for (interval, mode), rs in groups.items():
        mean = {k: statistics.fmean(r[k] for r in rs)
                for k in ("updates", "share", "gap", "in_flight", "train")}
        out.append({"interval": interval, "mode": mode, **mean, "runs": len(rs),
                    "losses": {d: statistics.fmean(r["losses"][d] for r in rs)
                               for d in rs[0]["losses"]}})
    return out


HEADER = ("three warm SuperNodes (qwen2-tiny, one specialty each) and an insecure SuperLink "
          "on one 2-core machine, the same wall-clock budget, data and seed per case. Node "
          "time training is each node's training seconds over the span from its first train "
          "message to its last reply. Losses are each expert's held-out loss on its own "
          "domain at the end of the budget (lower is better).")


def _repeated(rows: list[dict]) -> str:
    """The means table, then every run's rows (rows that carry a ``repeat``)."""
    runs = max(r["repeat"] for r in rows)
    return f"Mean of {runs} runs:\n\n{table(means(rows))}\n\nEach run:\n\n{table(rows)}"


def _save(out: Path, stem: str, rows: list[dict], title: str, intro: str, text: str) -> None:
    """``STEM.json`` (the raw rows) and ``STEM.md`` (title, how it was run, the table)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / f"{stem}.md").write_text(f"# {title}\n\n{intro}\n\n{text}\n")


def write(rows: list[dict], out: Path, command: str) -> str:
    """The results table (Markdown), saved with the raw rows."""
    date = time.strftime("%Y-%m-%d")
    if "repeat" not in rows[0]:
        text = table(rows)
        _save(out, "overlap", rows, "Overlapped training against stop-and-wait",
              f"`{command}`, {date}: {HEADER}", text)
        return text
    text = _repeated(rows)
    _save(out, "overlap_repeats", rows, "Overlapped training against stop-and-wait, repeated",
          f"`{command}`, {date}: {HEADER} The modes run interleaved within each repeat, so "
          f"a machine that slows down during the benchmark slows every mode alike.", text)
    return text


def _sim_labels(interval: float) -> dict[str, str]:
    timed = f"fedasync+train.max-steps=0+train.sync-interval={interval:g}"
    return {"stop-and-wait": timed, "overlap-carry": timed + "+train.overlap=true",
            "overlap-replace": timed + "+train.overlap=true+train.overlap-rule=replace"}


def _sim_rows(interval: float, budget: float, work: Path, out: Path) -> tuple[list, dict]:
    """One scenario (b) comparison (FedAvg for the targets, then the three modes)."""
    import async_vs_sync as avs

    modes = _sim_labels(interval)
    args = argparse.Namespace(budget=budget, steps=20, seed=42, work=work, out=out,
                              seconds_per_token=0.0, rescore=False)
    results, targets = avs.compare(args, ["b"], ["fedavg", *modes.values()])
    rows = []
    for mode, label in modes.items():
        r = next(r for r in results if r.strategy == label)
        run = work / f"b-{avs.label_dir(label)}"
        scored = {s: r.curves[s][-1][1] for s in avs.SPECIALTIES}
        rows.append({"mode": mode, "interval": interval, **summarise(run), "scored": scored,
                     "to_target": r.per_specialty})
    return rows, targets["b"]


def _sim_setup(interval: float, budget: float) -> str:
    import async_vs_sync as avs

    return (f"six simulated nodes (two per specialty, one of each pair 4x slower, time "
            f"dilated {avs.dilation(avs.SCENARIOS['b'].speed_factors):.2f}x to fit the cores), "
            f"FedAsync, train.sync-interval {interval:g} s, {budget:g} s of training per case, "
            "one Flower actor per node; with overlap each node trains in a Ray actor of its "
            "own. Losses are the benchmark's held-out loss of each expert's last version "
            "within the budget (lower is better)")


def simulation(interval: float, budget: float, work: Path, out: Path) -> str:
    """Scenario (b) in simulation: stop-and-wait against overlap (carry, replace)."""
    import async_vs_sync as avs

    rows, target = _sim_rows(interval, budget, work, out)
    domains = list(avs.SPECIALTIES)
    lines = ["| mode | updates | node time training | time between replies (median) | "
             "in flight (median) | " + " | ".join(f"{d} loss (to FedAvg's target)"
                                                  for d in domains) + " |",
             "|---|---:|---:|---:|---:|" + "---|" * len(domains)]
    for r in rows:
        cells = [f"{r['scored'][d]:.3f} ({avs._fmt_s(r['to_target'][d])}"
                 f"{'' if r['to_target'][d] is None else ' s'})" for d in domains]
        lines.append(f"| {r['mode']} | {r['updates']} | {100 * r['share']:.0f}% | "
                     f"{r['gap']:.1f} s | {r['in_flight']:.1f} s | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    _save(out, "overlap_sim", rows, "Overlapped training in simulation: scenario (b)",
          f"`bash scripts/bench.sh overlap --simulation --intervals {interval:g}`, "
          f"{time.strftime('%Y-%m-%d')}: {_sim_setup(interval, budget)}, with the time it "
          "first reached FedAvg's final loss in the same scenario ("
          + ", ".join(f"{d} {target[d]:.3f}" for d in domains) + ").", text)
    return text


def simulation_repeats(interval: float, budget: float, repeats: int, work: Path,
                       out: Path) -> str:
    """Scenario (b) ``repeats`` times (all modes in each), tabled per run and as means.

    A single run's losses move by a few hundredths from timing alone (the budget
    is wall-clock), about as much as the modes differ, so the claim is the mean.
    """
    rows = []
    for repeat in range(1, repeats + 1):
        got, _ = _sim_rows(interval, budget, work / f"r{repeat}", out)
        rows += [{**r, "repeat": repeat, "losses": r["scored"]} for r in got]
    text = _repeated(rows)
    _save(out, "overlap_sim_repeats", rows,
          "Overlapped training in simulation, scenario (b), repeated",
          f"`bash scripts/bench.sh overlap --simulation --intervals {interval:g} --repeats "
          f"{repeats}`, {time.strftime('%Y-%m-%d')}: {_sim_setup(interval, budget)}. Each run "
          "holds every mode (and the FedAvg reference), so a machine that slows down during "
          "the benchmark slows every mode alike.", text)
    return text


def main() -> None:
    """Every (interval, mode) case, then the table."""
    import os

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--intervals", default="10,30", help="train.sync-interval values (s)")
    ap.add_argument("--duration", type=float, default=150.0,
                    help="seconds of training per case")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--repeats", type=int, default=1,
                    help="run every case N times, modes interleaved (writes overlap_repeats)")
    ap.add_argument("--work", type=Path, default=ROOT / ".fedmoe" / "bench-overlap")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--simulation", action="store_true",
                    help="scenario (b) in simulation instead of the deployment")
    ap.add_argument("--budget", type=float, default=75.0,
                    help="--simulation: training seconds per case")
    args = ap.parse_args()
    os.environ.setdefault("FEDMOE_CACHE", str(ROOT / ".fedmoe" / "cache"))
    if args.simulation:
        interval = float(args.intervals.split(",")[0])
        print(simulation(interval, args.budget, args.work / "sim", args.out)
              if args.repeats == 1 else
              simulation_repeats(interval, args.budget, args.repeats, args.work / "sim",
                                 args.out))
        return
    rows = []
    for repeat in range(1, args.repeats + 1):
        for interval in [float(x) for x in args.intervals.split(",")]:
            for mode in args.modes.split(","):
                t0 = time.time()
                stats = summarise(run_case(mode, interval, args.duration, args.work,
                                           repeat if args.repeats > 1 else 0))
                rows.append({"mode": mode, "interval": interval, **stats}
                            | ({"repeat": repeat} if args.repeats > 1 else {}))
                print(f"{mode} @ {interval:g}s: {stats} ({time.time() - t0:.0f}s)", flush=True)
    print(write(rows, args.out, "bash scripts/bench.sh overlap " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
