"""Chaos campaign: a TLS + authenticated deployment loses nothing through kills and restarts.

Reproduce (about 25 minutes on 2 CPU cores)::

    bash scripts/bench.sh chaos
    bash scripts/bench.sh chaos --bursts 1 --spread 0 --tail 15 --out /tmp/chaos  # ~12 min check

On 127.0.0.1, with ``scripts/deploy.sh`` (TLS, SuperNode authentication, warm
workers; ``tests/chaos_fleet.py``): four honest SuperNodes (python_expert x2,
sql_expert, docs_expert; qwen2-tiny) and one registered red-team node of
python_expert (node config ``red-team = 'cycle'``: an honest reply, then zeros,
a replay, a sign flip and a rescaled change in turn).  The campaign
(``tests/chaos_campaign.py``) runs one federation as three runs, each resumed
from the last one's run directory:

- ``c1``: ``--bursts`` bursts of faults spread over ``--spread`` seconds, each
  one or two at once on random honest nodes: ``kill -9`` of a SuperNode and
  its worker (process groups; the node is started again once the SuperLink
  lets its old session go) or of the worker alone (its supervisor restarts
  it); then ``kill -9`` of the SuperLink and a start on the same state
  database;
- ``c2`` (resumed from c1) until ``--resumed-updates`` accepted updates, then
  ``kill -9`` of its ServerApp (``flwr-serverapp``);
- ``c3`` (resumed from c2) for ``--tail`` seconds, ending normally.

Then a clean run (the four honest nodes, no faults, no red-team node) trains as
long as the campaign's three runs trained together, evaluating every 30 s.

Figures (``tests/chaos_figures.py``): faults injected and survived (the node
it hit, or any node after a SuperLink or ServerApp fault, sends an accepted
update again) and the time to that update; accepted updates lost (merged
updates of a run ended by a fault that are not in the checkpoint the next run
resumed from); checkpoints unreadable (every current and kept version of
every expert and gateway of every run, through the checked reader: checksum,
fields, finite); what the robust checks did with the red-team node and with
honest ones; and each expert's final held-out loss on its own domain against
the clean run.

Quality bound: the faults cost training time, so the chaos expert is held to
the clean run's loss at the same training seconds less the seconds it lost:
``final <= 1.02 x clean(T - D)``, where ``T`` is the campaign's training time
(three runs) and ``D`` the expert's recovery seconds of faults on its nodes,
divided by its number of honest nodes (with two python nodes, one down halves
the expert's updates); 2% is the bound the fake-Grid test of one red-team
node among honest ones holds the expert to.  Writes
``bench/results/chaos.md`` and ``chaos.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chaos_campaign import HONEST, NODE_FAULTS, RUNS, Campaign, Plan  # noqa: E402
from tests.chaos_figures import (  # noqa: E402
    check_checkpoints,
    initial_losses,
    loss_at,
    lost_updates,
    own_losses,
    recoveries,
    red_team,
    training_seconds,
)
from tests.chaos_fleet import Fleet  # noqa: E402

QUALITY_SLACK = 0.02  # of the clean run's loss (the fake-Grid red-team test's bound)
EVAL_EVERY_S = 30.0  # the clean run's evaluations: its loss curve


def bursts(count: int, seed: int) -> tuple[tuple[str, ...], ...]:
    """The first burst a crash and a worker kill at once; the rest one or two random faults."""
    rng = random.Random(seed)
    out = [("node-crash", "worker-kill")]
    for _ in range(count - 1):
        out.append(tuple(rng.choice(NODE_FAULTS) for _ in range(rng.choice((1, 2)))))
    return tuple(out[:count])


def campaign(work: Path, plan: Plan) -> dict:
    """Run the chaos campaign; every figure but quality's clean side."""
    fleet = Fleet(work / "chaos", plan.nodes)
    camp = Campaign(fleet, plan)
    try:
        fleet.up()
        outcome = camp.run()
    finally:
        fleet.stop_all(*camp.procs.values())
    events = {r: fleet.events(r) for r in RUNS}
    red = {fleet.node_id(n) for n in camp.red}
    honest = {fleet.node_id(n) for n in camp.honest}
    checks = {r: check_checkpoints(fleet.out / r) for r in RUNS}
    summary = json.loads((fleet.out / "c3" / "summary.json").read_text())
    return {"faults": recoveries(outcome), "exit_codes": outcome.exit_codes,
            "superlink_ended_run": outcome.superlink_ended_run,
            "lost": {f"{a}->{b}": lost_updates(events[a], events[b])
                     for a, b in zip(RUNS, RUNS[1:], strict=False)},
            "checkpoints": {r: {"checked": c, "problems": p} for r, (c, p) in checks.items()},
            "red_team": {r: red_team(events[r], red, honest) for r in RUNS},
            "training_seconds": sum(training_seconds(events[r]) for r in RUNS),
            "initial": initial_losses(events["c1"]),
            "final": own_losses(summary["eval"]["final"])}


def clean_run(work: Path, seconds: float, overrides: str) -> list[dict]:
    """The honest nodes alone, no faults, for ``seconds`` of training; its events."""
    fleet = Fleet(work / "clean", HONEST)
    proc = None
    try:
        fleet.up()
        proc = fleet.submit(f"{overrides} run.duration={seconds:.0f} "
                            f"eval.every-s={EVAL_EVERY_S:g}", "clean")
        if proc.wait(timeout=seconds + 1200):
            raise RuntimeError(f"the clean run failed; see {fleet.work / 'clean.log'}")
    finally:
        fleet.stop_all(proc)
    return fleet.events("clean")


def quality(chaos: dict, clean: list[dict]) -> list[dict]:
    """Per expert: chaos final, clean final, the bound and whether the final is within it."""
    nodes = {s: sum(n.specialty == s for n in HONEST) for s in {n.specialty for n in HONEST}}
    names = {n.name: n.specialty for n in HONEST}
    clean_final = {e["domain"]: e["losses"][e["domain"]] for e in clean
                   if e["event"] == "eval" and e["tag"] == "final"}
    rows = []
    for domain, final in sorted(chaos["final"].items()):
        lost = sum((f["recovery_s"] or 0.0) for f in chaos["faults"]
                   if names.get(f["target"]) == domain) / nodes[domain]
        at = max(0.0, chaos["training_seconds"] - lost)
        bound = (1 + QUALITY_SLACK) * loss_at(clean, domain, at)
        rows.append({"expert": domain, "initial": chaos["initial"][domain], "final": final,
                     "clean_final": clean_final[domain], "lost_s": lost, "clean_at": at,
                     "bound": bound, "ok": final <= bound})
    return rows


def write(result: dict, out: Path) -> str:
    """The tables (Markdown, printed and saved) and the raw figures (JSON)."""
    faults, rows = result["faults"], result["quality"]
    survived = [f for f in faults if f["recovery_s"] is not None]
    lost = sum(sum(v.values()) for v in result["lost"].values())
    checked = sum(c["checked"] for c in result["checkpoints"].values())
    bad = sum(len(c["problems"]) for c in result["checkpoints"].values())
    lines = [f"Faults injected {len(faults)}, survived {len(survived)}; accepted updates lost "
             f"{lost}; checkpoints read {checked}, unreadable {bad}.", "",
             "| fault | count | survived | recovery (median) | recovery (max) | to |",
             "|---|---:|---:|---:|---:|---|"]
    for kind in dict.fromkeys(f["kind"] for f in faults):
        times = sorted(f["recovery_s"] for f in faults if f["kind"] == kind
                       and f["recovery_s"] is not None)
        of = [f for f in faults if f["kind"] == kind]
        med = f"{times[len(times) // 2]:.0f} s" if times else "-"
        top = f"{times[-1]:.0f} s" if times else "-"
        lines.append(f"| {kind} | {len(of)} | {len(times)} | {med} | {top} | next accepted "
                     f"update of {of[0]['scope']} |")
    lines += ["", "| run | red-team refused | red-team accepted | quarantined | honest refused "
              f"| honest nodes that trained (of {len(HONEST)}) |", "|---|---|---:|---|---:|---:|"]
    for run, r in result["red_team"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["red_refused"].items())) or "-"
        lines.append(f"| {run} | {reasons} | {r['red_accepted']} | "
                     f"{'yes' if r['quarantined'] else 'no'} | "
                     f"{sum(r['honest_refused'].values())} | {r.get('honest_trained', '-')} |")
    lines += ["", "| expert | initial | chaos final | clean final | clean at T - D | bound "
              "(x1.02) | within |", "|---|---:|---:|---:|---:|---:|---|"]
    for q in rows:
        lines.append(f"| {q['expert']} | {q['initial']:.3f} | {q['final']:.3f} | "
                     f"{q['clean_final']:.3f} | {q['bound'] / (1 + QUALITY_SLACK):.3f} at "
                     f"{q['clean_at']:.0f} s | {q['bound']:.3f} | "
                     f"{'yes' if q['ok'] else 'NO'} |")
    text = "\n".join(lines)
    link = ("ended the run: flwr-serverapp exits with its SuperLink (--parent-pid), so c2 "
            "resumed from c1's run directory" if result["superlink_ended_run"] else
            "did not end the run")
    out.mkdir(parents=True, exist_ok=True)
    (out / "chaos.json").write_text(json.dumps(result, indent=2, default=dict) + "\n")
    (out / "chaos.md").write_text(
        "# Chaos campaign\n\n"
        f"`bash scripts/bench.sh chaos`, {time.strftime('%Y-%m-%d')}, "
        f"{result['args']['bursts']} burst(s) of node faults over "
        f"{result['args']['spread']:g} s, seed "
        f"{result['args']['seed']}: a TLS + authenticated deployment on one 2-core machine "
        "(four honest warm SuperNodes, qwen2-tiny, and one red-team node), three runs each "
        f"resumed from the last (see bench/chaos.py). The SuperLink restart {link}. Trained "
        f"{result['training_seconds']:.0f} s over the three runs; the clean run as long. "
        "Losses: held-out, each expert on its own domain (lower is better); D: the "
        "expert's recovery seconds over its honest nodes; an expert none of whose nodes "
        "trained in c3 has no final evaluation there and no quality row.\n\n" + text + "\n")
    return text


def main() -> None:
    """The campaign, the clean run, the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bursts", type=int, default=4, help="bursts of node faults in c1")
    ap.add_argument("--spread", type=float, default=300.0,
                    help="seconds the bursts are spread over")
    ap.add_argument("--resumed-updates", type=int, default=8,
                    help="accepted updates of c2 before its ServerApp is killed")
    ap.add_argument("--tail", type=float, default=60.0, help="c3's run.duration (s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=ROOT / ".fedmoe" / "bench-chaos")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    os.environ.setdefault("FEDMOE_CACHE", str(ROOT / ".fedmoe" / "cache"))
    work = args.work / time.strftime("%Y%m%d-%H%M%S")
    plan = Plan(bursts=bursts(args.bursts, args.seed), spread_seconds=args.spread,
                resumed_updates=args.resumed_updates, tail_seconds=args.tail, seed=args.seed)
    t0 = time.time()
    result = campaign(work, plan)
    print(f"campaign done in {time.time() - t0:.0f}s; clean run of "
          f"{result['training_seconds']:.0f}s", flush=True)
    result["quality"] = quality(result, clean_run(work, result["training_seconds"],
                                                  plan.overrides))
    result["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print(write(result, args.out))
    print(f"total {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
