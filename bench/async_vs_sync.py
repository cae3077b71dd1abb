"""Asynchronous vs synchronous aggregation with stragglers, on real ``flwr run`` federations.

Reproduce (about 24 minutes on 2 CPU cores)::

    bash scripts/bench.sh async_vs_sync

Every strategy runs the same model, data, seed, wall-clock budget and local
work (a fixed number of steps per update, like a local epoch, so a 4x slower
node takes 4x longer per update) in two straggler scenarios:

(a) three specialties, one node each, the docs node 4x slower;
(b) two nodes per specialty, one of each pair 4x slower.

Rows: ``fedavg`` (ours, per specialty: it defines the target), ``flower-fedavg``
(the peer: Flower's own FedAvg, unmodified, one global adapter for every node,
scored on each domain), ``fedasync``, ``fedasync-delta`` (stale updates by the
delta rule) and ``fedbuff``.

Runs keep every checkpointed version (``run.keep-versions = 0``); afterwards
each version is scored on its domain's held-out split with the nodes' own
evaluation code, so all strategies are measured by one evaluator and the
federations are not slowed by evaluation while they train.  The target of a
specialty is the held-out loss synchronous FedAvg reaches at the end of its
budget; time-to-target is the first moment every specialty is at or below
its target.  Writes ``bench/results/async_vs_sync.{md,json,png}``.

Emulating a fleet of separate machines on a few shared cores takes three
corrections, all applied to every strategy alike:

* every simulated node gets its own Ray actor (``SIM_ACTORS`` = nodes): a slow
  node sleeps out its slowness inside its actor, and with fewer actors than
  nodes the sleeping stragglers held the actors the fast nodes needed;
* the fleet runs in dilated time: every speed factor is multiplied by one
  dilation so that the fleet's CPU demand (sum of 1/f per node, in cores) fits
  the machine with half a core to spare for the server.  Without it, three
  "fast" nodes on two cores ran at a third of their speed while the slow ones
  topped their steps up to 4x CPU time, so "4x slower" measured about 2x.
  The ratios between nodes, which the scenarios are about, are unchanged;
* every step is paced by a cost model, ``sim.seconds-per-token`` (measured
  here first: CPU seconds per padded token of the nodes' own training step,
  alone on the machine) instead of its CPU time, which grows 5-10% while the
  other cores are busy: with CPU time the lone slow node of (a) trained 8%
  slower under the asynchronous strategies, whose fast nodes never idle, than
  under FedAvg, whose fast nodes wait at the barrier.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedmoe_flwr.config import parse_run_config  # noqa: E402
from fedmoe_flwr.contract import GLOBAL  # noqa: E402
from fedmoe_flwr.events import Version, of_kind, read_events  # noqa: E402
from fedmoe_flwr.logs import setup_logging  # noqa: E402
from fedmoe_flwr.server.artifacts import load_adapter_weights  # noqa: E402
from fedmoe_flwr.tools.scoring import DomainScorer  # noqa: E402

SPECIALTIES = ("python_expert", "sql_expert", "docs_expert")
FEDMOE = str(Path(sys.executable).with_name("fedmoe"))  # no bash needed


@dataclass(frozen=True)
class Scenario:
    """A fleet: how many simulated nodes, their speeds, and FedBuff's K for it."""

    key: str
    title: str
    num_nodes: int
    speed_factors: str
    buffer_size: int  # FedBuff K = nodes per specialty (K above the concurrency never fills)


SCENARIOS = {
    "a": Scenario("a", "one node per specialty, docs node 4x slower", 3, "1,1,4", 1),
    "b": Scenario("b", "two nodes per specialty, one of each pair 4x slower", 6,
                  "1,1,1,4,4,4", 2),
    # Not in the default --scenarios: the exact_lora benchmark's many-nodes-per-expert case.
    "c": Scenario("c", "four nodes per specialty, two of each four 4x slower", 12,
                  "1,1,1,1,1,1,4,4,4,4,4,4", 4),
}
STRATEGIES = ("fedavg", "flower-fedavg", "fedasync", "fedasync-delta", "fedbuff")
# Named variants: label -> (strategy.name, extra run config).  Any other entry of
# --strategies is NAME[+key=value...], e.g. "fedasync+strategy.fedasync.alpha=0.9".
VARIANTS: dict[str, tuple[str, dict]] = {
    "fedasync-delta": ("fedasync", {"strategy.fedasync.stale-rule": "delta"}),
    "fedavg-ffa": ("fedavg", {"model.lora-variant": "ffa"}),
    "fedasync-ffa": ("fedasync", {"model.lora-variant": "ffa"}),
}


SERVER_CORES = 0.5  # kept free for the ServerApp, SuperLink and Ray


def dilation(speed_factors: str, cores: int | None = None) -> float:
    """Factor that slows the whole fleet until its CPU demand fits the cores.

    A node with speed factor ``f`` needs ``1/f`` of a core while it trains
    (one torch thread, stretched to ``f`` times its CPU time); the fleet needs
    the sum.  Returns at least 1: a fleet that fits already runs as is.
    """
    cores = cores or os.cpu_count() or 1
    demand = sum(1.0 / float(f) for f in speed_factors.split(","))
    return max(1.0, demand / max(cores - SERVER_CORES, 0.5))


def dilated(speed_factors: str, cores: int | None = None) -> str:
    """The speed factors as the federation runs them (see :func:`dilation`)."""
    d = dilation(speed_factors, cores)
    return ",".join(f"{float(f) * d:.3g}" for f in speed_factors.split(","))


def parse_variant(entry: str) -> tuple[str, dict]:
    """``(strategy.name, extra run config)`` of one ``--strategies`` entry."""
    if entry in VARIANTS:
        return VARIANTS[entry]
    name, *pairs = entry.split("+")
    extra = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--strategies entry {entry!r}: {pair!r} is not key=value")
        if value in ("true", "false"):
            extra[key] = value == "true"
            continue
        try:
            extra[key] = float(value) if "." in value or "e" in value else int(value)
        except ValueError:
            extra[key] = value
    return name, extra


def label_dir(label: str) -> str:
    """A run name for a variant label (run names allow letters, digits, - and _).

    At most 60 characters, so a scenario prefix keeps it within run.name's 64: a longer
    label keeps its first 51 and a digest of the whole, stable across runs (``--rescore``
    finds the same directory).
    """
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)
    if len(name) <= 60:
        return name
    return f"{name[:51]}-{hashlib.sha1(label.encode()).hexdigest()[:8]}"


@dataclass
class Result:
    """One federation's measured outcome."""

    scenario: str
    strategy: str
    curves: dict[str, list[tuple[float, float]]]  # specialty -> [(seconds, held-out loss)]
    summary: dict
    wall_seconds: float
    time_to_target: float | None = None
    per_specialty: dict[str, float | None] = field(default_factory=dict)


def calibrate(scorer: DomainScorer, steps: int = 30) -> float:
    """CPU seconds per padded token of the nodes' training step, measured here, alone.

    Same model, data, batch size and one torch thread as a node; a few warm-up
    steps first (the first steps allocate).  Trains a scratch adapter slot.
    """
    import torch

    from fedmoe_flwr.node.model import ensure_adapter
    from fedmoe_flwr.node.settings import NodeSettings, node_data
    from fedmoe_flwr.node.training import TrainSpec, train_for_budget

    cfg, loaded = scorer.cfg, scorer.loaded
    ensure_adapter(loaded, "_calibrate", cfg.model)
    loaded.peft_model.set_adapter("_calibrate")
    node = NodeSettings(SPECIALTIES[0], scorer.paths[SPECIALTIES[0]])
    _, rows, _ = node_data(node, cfg, loaded.tokenizer, loaded.fingerprint)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(cfg.train.torch_threads, 1))
    try:
        result = None
        for n in (5, steps):
            result = train_for_budget(
                loaded.peft_model, rows, pad_id=loaded.tokenizer.pad_token_id,
                device=loaded.device, spec=TrainSpec(cfg.train.batch_size,
                                                     cfg.train.learning_rate, 3600.0, n, n))
    finally:
        torch.set_num_threads(threads)
    return result.compute_seconds / result.padded_tokens


def run_config(scenario: Scenario, strategy: str, args: argparse.Namespace) -> str:
    """The single ``--run-config`` string of one federation (flwr keeps only the last)."""
    name, extra = parse_variant(strategy)
    values = {
        "strategy.name": name, "strategy.fedbuff.buffer-size": scenario.buffer_size,
        "strategy.fedbuff.server-lr": 1.0, "strategy.fedavg.sync-scope": "global",
        "train.max-steps": args.steps, "train.sync-interval": 600.0,
        "sim.speed-factors": dilated(scenario.speed_factors), "run.duration": float(args.budget),
        "run.drain-timeout": 0.0, "run.keep-versions": 0, "run.seed": args.seed,
        "run.output-dir": str(args.work.resolve()),
        "run.name": f"{scenario.key}-{label_dir(strategy)}",
        "sim.seconds-per-token": args.seconds_per_token, **extra,
    }
    return " ".join(f"{k}={v!r}" if isinstance(v, str) else
                    f"{k}={str(v).lower()}" if isinstance(v, bool) else f"{k}={v}"
                    for k, v in values.items())


def run_federation(scenario: Scenario, strategy: str, args: argparse.Namespace) -> Path:
    """Run one federation with ``fedmoe run`` (what the README's run script runs)."""
    run_dir = args.work / f"{scenario.key}-{label_dir(strategy)}"
    log_path = args.work / f"{scenario.key}-{label_dir(strategy)}.log"
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NUM_SUPERNODES": str(scenario.num_nodes),
           "SIM_ACTORS": str(scenario.num_nodes)}  # a sleeping straggler holds its own actor
    with log_path.open("w") as log:
        proc = subprocess.run([FEDMOE, "run", "--run-config",
                               run_config(scenario, strategy, args)],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              timeout=args.budget + 900)
    if proc.returncode != 0 or not (run_dir / "summary.json").exists():
        raise SystemExit(f"{scenario.key}/{strategy} failed (exit {proc.returncode}); "
                         f"see {log_path}")
    return run_dir


def version_times(run_dir: Path) -> dict[str, dict[int, float]]:
    """Specialty -> version -> seconds after training started, from ``metrics.jsonl``.

    A peer run (one global adapter) has versions of ``global`` only.
    """
    times: dict[str, dict[int, float]] = {}
    for event in of_kind(read_events(run_dir / "metrics.jsonl"), Version):
        times.setdefault(event.adapter, {0: 0.0})[event.version] = event.elapsed
    if GLOBAL in times:
        return {GLOBAL: times[GLOBAL]}
    return {s: times.get(s, {0: 0.0}) for s in SPECIALTIES} | times


def score_run(run_dir: Path, scorer: DomainScorer, budget: float) -> dict[str, list]:
    """Held-out loss of every checkpointed version within the budget, per specialty.

    A peer run (Flower's FedAvg, one global adapter) is scored on every domain
    with its one adapter's versions.  The server's checkpoint worker writes only
    the newest version of an expert when several queue up, so a version that
    was superseded within milliseconds may have no directory: it is skipped
    (its successor, a moment later, is scored).
    """
    if not (run_dir / "metrics.jsonl").exists():
        raise SystemExit(f"{run_dir} has no metrics.jsonl: not a run directory")
    times = version_times(run_dir)
    peer = GLOBAL in times
    curves = {}
    for specialty in SPECIALTIES:
        name = GLOBAL if peer else specialty
        points = []
        for version, seconds in sorted(times[name].items()):
            if seconds > budget:
                continue
            path = run_dir / "experts" / ".versions" / f"{name}-v{version:06d}"
            if not path.exists():  # superseded while its checkpoint was queued (coalesced)
                continue
            points.append((seconds, scorer.loss(load_adapter_weights(path), specialty)))
        curves[specialty] = points
    return curves


def first_time_below(curves: dict[str, list[tuple[float, float]]],
                     targets: dict[str, float]) -> float | None:
    """First moment every specialty's current loss is at or below its target."""
    events = sorted((t, s, loss) for s, pts in curves.items() for t, loss in pts)
    current = {s: math.inf for s in targets}
    for t, s, loss in events:
        current[s] = loss
        if all(current[k] <= targets[k] + 1e-9 for k in targets):
            return t
    return None


def _fmt_s(x: float | None) -> str:
    return "not reached" if x is None else f"{x:.0f}"


def timing_cells(r: Result, sync: Result) -> tuple[str, str, str]:
    """A row's ratio to FedAvg's time to target, per-specialty times and final losses."""
    ratio = ("-" if r.time_to_target is None or not sync.time_to_target
             else f"{r.time_to_target / sync.time_to_target:.2f}x")
    per = " / ".join(_fmt_s(r.per_specialty[s]) for s in SPECIALTIES)
    finals = " / ".join(f"{r.curves[s][-1][1]:.3f}" for s in SPECIALTIES)
    return ratio, per, finals


def markdown(results: list[Result], targets: dict[str, dict[str, float]],
             args: argparse.Namespace, wall: float) -> str:
    """The README table: one block per scenario, ratios against FedAvg."""
    out = [f"Budget {args.budget:.0f} s of training per federation, {args.steps} local steps "
           f"per update, seed {args.seed}; one run per cell; steps paced at "
           f"{args.seconds_per_token * 1e6:.2f} us per padded token x speed factor; total wall "
           f"time {wall / 60:.1f} min.", ""]
    for key, scenario in SCENARIOS.items():
        rows = [r for r in results if r.scenario == key]
        if not rows:
            continue
        sync = next(r for r in rows if r.strategy == "fedavg")
        tgt = targets[key]
        out += [f"**Scenario ({key})**: {scenario.title}; speed factors "
                f"{scenario.speed_factors} run as {dilated(scenario.speed_factors)} (time dilated "
                f"{dilation(scenario.speed_factors):.2f}x to fit {os.cpu_count()} cores). "
                "Targets (FedAvg's final held-out loss): "
                + ", ".join(f"{s.split('_')[0]} {v:.3f}" for s, v in tgt.items()),
                "",
                "| strategy | time to target, all (s) | vs FedAvg | python / sql / docs "
                "time to target (s) | final loss python / sql / docs | updates | "
                "MB sent / received |",
                "|---|---:|---:|---|---|---:|---:|"]
        for r in rows:
            ratio, per, finals = timing_cells(r, sync)
            out.append(f"| {r.strategy} | {_fmt_s(r.time_to_target)} | {ratio} | {per} | "
                       f"{finals} | {r.summary['updates']} | "
                       f"{r.summary['bytes_sent'] / 1e6:.1f} / "
                       f"{r.summary['bytes_received'] / 1e6:.1f} |")
        out.append("")
    return "\n".join(out)


def plot(results: list[Result], targets: dict[str, dict[str, float]], path: Path) -> None:
    """Held-out loss against wall-clock seconds: rows scenarios, columns specialties."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in SCENARIOS if any(r.scenario == k for r in results)]
    fig, axes = plt.subplots(len(keys), len(SPECIALTIES), figsize=(13, 3.6 * len(keys)),
                             squeeze=False, sharey=True)
    colors = {"fedavg": "tab:gray", "fedasync": "tab:blue", "fedbuff": "tab:orange",
              "fedasync-delta": "tab:green", "flower-fedavg": "tab:red"}
    for row, key in enumerate(keys):
        for col, specialty in enumerate(SPECIALTIES):
            ax = axes[row][col]
            for r in (r for r in results if r.scenario == key):
                t, loss = zip(*r.curves[specialty], strict=True)
                ax.step(t, loss, where="post", marker=".", color=colors.get(r.strategy),
                        label=r.strategy)
            ax.axhline(targets[key][specialty], ls="--", lw=1, color="black",
                       label="target (FedAvg final)")
            ax.set(title=f"({key}) {specialty}", xlabel="seconds of training")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("held-out loss")
            if row == 0 and col == len(SPECIALTIES) - 1:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare(args: argparse.Namespace, scenarios: list[str],
            strategies: list[str]) -> tuple[list[Result], dict[str, dict[str, float]]]:
    """Run (or with ``--rescore`` re-read) every federation, score it, set the targets.

    Shared with ``exact_lora.py``, which runs other rows on the same machinery.
    The target of a scenario is the final held-out loss of its ``fedavg`` row.
    """
    t0 = time.perf_counter()
    setup_logging()  # no progress bars
    scorer = DomainScorer(parse_run_config({}))
    if not args.rescore and args.seconds_per_token == 0:
        args.seconds_per_token = calibrate(scorer)
    print(f"step cost {args.seconds_per_token * 1e6:.2f} us per padded token", flush=True)
    run_dirs = {}
    for key in scenarios:
        scenario = SCENARIOS[key]
        for strategy in strategies:
            print(f"[{time.perf_counter() - t0:6.0f}s] scenario ({scenario.key}) {strategy}: "
                  f"{scenario.num_nodes} nodes, speeds {scenario.speed_factors} run as "
                  f"{dilated(scenario.speed_factors)}", flush=True)
            run_dirs[scenario.key, strategy] = (
                args.work / f"{scenario.key}-{label_dir(strategy)}" if args.rescore
                else run_federation(scenario, strategy, args))
    print(f"[{time.perf_counter() - t0:6.0f}s] scoring every version", flush=True)
    results = []
    for (key, strategy), run_dir in run_dirs.items():
        results.append(Result(key, strategy, score_run(run_dir, scorer, args.budget),
                              json.loads((run_dir / "summary.json").read_text()), 0.0))
    targets = {}
    for key in {r.scenario for r in results}:
        sync = next(r for r in results if r.scenario == key and r.strategy == "fedavg")
        targets[key] = {s: sync.curves[s][-1][1] for s in SPECIALTIES}
    for r in results:
        r.time_to_target = first_time_below(r.curves, targets[r.scenario])
        r.per_specialty = {s: first_time_below({s: r.curves[s]}, {s: targets[r.scenario][s]})
                           for s in SPECIALTIES}
    return results, targets


def add_options(ap: argparse.ArgumentParser, scenarios: str, strategies: str) -> None:
    """The options of a comparison (shared with ``exact_lora.py``)."""
    ap.add_argument("--budget", type=float, default=75.0, help="training seconds per run")
    ap.add_argument("--steps", type=int, default=20, help="local steps per update")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--scenarios", default=scenarios,
                    help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    ap.add_argument("--strategies", default=strategies)
    ap.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench",
                    help="run directories and logs")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                    help="where the table, JSON and plot go")
    ap.add_argument("--seconds-per-token", type=float, default=0.0,
                    help="step cost model of every node (0 = measure it here first)")
    ap.add_argument("--rescore", action="store_true",
                    help="skip the federations, re-score existing run directories")


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, score every version, print and save the table and plot."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_options(ap, "a,b", ",".join(STRATEGIES))
    args = ap.parse_args(argv)
    strategies = [s.strip() for s in args.strategies.split(",")]
    if "fedavg" not in strategies:
        ap.error("--strategies must include fedavg: it defines the target")
    t0 = time.perf_counter()
    results, targets = compare(args, [k.strip() for k in args.scenarios.split(",")], strategies)
    wall = time.perf_counter() - t0
    table = markdown(results, targets, args, wall)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "async_vs_sync.md").write_text(table + "\n")
    (args.out / "async_vs_sync.json").write_text(json.dumps(
        [{"scenario": r.scenario, "strategy": r.strategy, "curves": r.curves,
          "time_to_target": r.time_to_target, "per_specialty": r.per_specialty,
          "updates": r.summary["updates"], "bytes_sent": r.summary["bytes_sent"],
          "bytes_received": r.summary["bytes_received"],
          "late_dropped": r.summary.get("late_dropped", 0)} for r in results], indent=1))
    plot(results, targets, args.out / "async_vs_sync.png")
    print(table)
    print(f"wrote {args.out}/async_vs_sync.md, .json, .png in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
