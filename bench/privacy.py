"""Final quality under differential privacy, local against central, at epsilon about 8 and 1.

Reproduce (about 50 minutes on 2 CPU cores: eight federations of about 6 minutes)::

    bash scripts/bench.sh privacy
    bash scripts/bench.sh privacy --nodes 12 --rounds 4 --epsilons 8 --variants standard

One specialty (python_expert) trained by ``--nodes`` simulated nodes on the
bounded actor pool, synchronous FedAvg rounds (every node in every round:
central DP noises the sum of each round once), ``--rounds`` rounds of
``train.max-steps`` steps, same seed everywhere.  Rows:

- the base model (the run's initial evaluation: an untrained expert);
- no DP, with a clipping bound so high nothing is clipped; the median norm of
  its updates' deltas becomes the clipping bound ``C`` of every private run;
- for each epsilon (delta 1e-5) and mode: the noise multiplier ``z`` that
  makes each node's epsilon after ``--rounds`` releases equal to it (the same
  ``z`` for both modes: one release per round per node, sensitivity one clip).
  ``local``: each node adds ``N(0, (z C)^2)`` to its own clipped delta, so the
  round's average carries noise of std ``z C / sqrt(N)`` per coordinate;
  ``central``: the trusted server adds ``N(0, (z C)^2)`` once to the sum, so
  the average carries ``z C / N``;
- for FFA-LoRA (``--variants``; B only: about half the coordinates, so about
  0.7x the noise norm at equal ``z``) the no-DP and central rows; local rows
  only for ``--local-variants`` (standard: local DP of whole updates keeps
  nothing at this scale, and each row is a 6-minute federation).

"Gain kept" is ``(base - loss) / (base - no-DP loss)`` on the expert's own
held-out split.  The table shows the epsilon the server's accountant reported.
Writes ``bench/results/privacy.md`` and ``privacy.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from federation_runs import ROOT, publish, run_federation, update_events

sys.path.insert(0, str(ROOT))
from fedmoe_flwr.privacy import noise_for_epsilon  # noqa: E402

SPECIALTY = "python_expert"


def _row(name: str, variant: str, summary: dict, clip: str, z: str, base: float,
         free: float | None) -> dict:
    """One table row from a run's summary (``free``: the no-DP loss of this variant)."""
    loss = summary["eval"]["final"][SPECIALTY][SPECIALTY]
    eps = summary.get("privacy", {}).get("experts", {}).get(SPECIALTY)
    kept = None if free is None or base == free else (base - loss) / (base - free)
    return {"run": name, "variant": variant, "clip": clip, "z": z,
            "epsilon": "inf" if eps is None else f"{eps:.2f}", "loss": loss, "kept": kept,
            "merged": summary["updates"], "rejected": sum(summary["rejected"].values())}


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=48, help="simulated nodes, one specialty")
    ap.add_argument("--rounds", type=int, default=6, help="FedAvg rounds (releases per node)")
    ap.add_argument("--steps", type=int, default=5, help="local steps per update")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epsilons", type=float, nargs="+", default=[8.0, 1.0])
    ap.add_argument("--variants", default="standard,ffa", help="model.lora-variant values")
    ap.add_argument("--local-variants", default="standard",
                    help="variants that also get local-DP rows (central DP runs for all)")
    ap.add_argument("--targets", default="", help="model.target-modules ('' = the default)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the runs of --work that finished (summary.json), run the rest")
    ap.add_argument("--duration", type=float, default=900.0, help="seconds per run, at most")
    ap.add_argument("--work", type=Path, default=ROOT / ".fedmoe" / "bench-privacy")
    return ap.parse_args()


def _runs(args: argparse.Namespace) -> tuple[list[dict], float]:
    """No-DP run per variant (it sets C), then local and central at each epsilon."""
    base_cfg = {"run.specialties": SPECIALTY, "sim.specialties": SPECIALTY,
                "sim.data-paths": "data/python.jsonl", "sim.speed-factors": "1",
                "strategy.name": "fedavg", "run.max-updates": args.nodes * args.rounds,
                "run.duration": args.duration, "train.max-steps": args.steps,
                "train.sync-interval": 600.0, "run.seed": args.seed,
                "strategy.max-update-norm": 0.0,  # noised updates are large by design
                "router.centroid-examples": 16}  # registration of many nodes: routing unused
    if args.targets:
        base_cfg["model.target-modules"] = args.targets
    rows, base = [], None

    def federation(name: str, overrides: dict) -> tuple[dict, Path]:
        done = args.work / name
        if not (args.reuse and (done / "summary.json").exists()):
            done = run_federation(args.work, name, overrides, nodes=args.nodes)
        return json.loads((done / "summary.json").read_text()), done

    for variant in args.variants.split(","):
        cfg = {**base_cfg, "model.lora-variant": variant}
        summary, run = federation(f"no-dp-{variant}", {**cfg, "privacy.clip": 1e6})
        base = summary["eval"]["initial"][SPECIALTY][SPECIALTY]
        clip = statistics.median(e.delta_norm for e in update_events(run)
                                 if e.delta_norm is not None)
        free = summary["eval"]["final"][SPECIALTY][SPECIALTY]
        rows.append(_row("no DP (not clipped)", variant, summary, "-", "-", base, free))
        modes = ("local", "central") if variant in args.local_variants.split(",") \
            else ("central",)
        for eps in args.epsilons:
            z = noise_for_epsilon(eps, args.rounds, 1e-5)
            for mode in modes:
                summary, _ = federation(f"{mode}-eps-{eps:g}-{variant}", {
                    **cfg, "privacy.mode": mode, "privacy.clip": clip,
                    "privacy.noise-multiplier": z, "privacy.max-epsilon": eps})
                rows.append(_row(f"{mode}, epsilon ~ {eps:g}", variant, summary,
                                 f"{clip:.4f}", f"{z:.2f}", base, free))
                print(rows[-1], flush=True)
    return rows, base


def main() -> None:
    """Every run, then the table (bench/results/privacy.md) and its data (.json)."""
    args = _args()
    rows, base = _runs(args)
    lines = [f"One specialty ({SPECIALTY}), {args.nodes} simulated nodes, synchronous FedAvg, "
             f"{args.rounds} rounds of {args.steps} steps per node, LoRA on "
             f"{args.targets or 'every linear module'}, seed {args.seed}; the base "
             f"model's held-out loss is **{base:.3f}**.", "",
             "| run | LoRA | clip C | noise multiplier z | epsilon reported | "
             "updates merged (rejected) | held-out loss | gain kept |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        kept = "-" if r["kept"] is None or r["run"].startswith("no DP") else f"{r['kept']:.0%}"
        lines.append(f"| {r['run']} | {r['variant']} | {r['clip']} | {r['z']} | "
                     f"{r['epsilon']} | {r['merged']} ({r['rejected']}) | {r['loss']:.3f} | "
                     f"{kept} |")
    lines += ["", "C is the median delta norm of the variant's no-DP run; z makes each "
                  f"node's epsilon reach the target after {args.rounds} releases at delta "
                  "1e-5 (privacy.max-epsilon stops it there); gain kept = (base - loss) / "
                  "(base - no-DP loss); rejected updates are refused by the server (non-finite "
                  "or robust checks)."]
    publish("privacy", lines)
    (ROOT / "bench" / "results" / "privacy.json").write_text(json.dumps(
        {"nodes": args.nodes, "rounds": args.rounds, "steps": args.steps, "base": base,
         "targets": args.targets or "default",
         "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
