"""Final quality under local differential privacy, at epsilon about 8 and 1, and without.

Reproduce (about 10 minutes on 2 CPU cores)::

    bash scripts/bench.sh privacy

The default federation, same seed and budget (``run.max-updates`` updates of
``train.max-steps`` steps).  First without noise but with a clipping bound so
high nothing is clipped: that run is the no-DP row, and the median norm of its
updates' deltas (``delta-norm``) becomes the clipping bound ``C`` of the other
runs.  Then with the noise multipliers that make each node's epsilon (at
delta 1e-5, after its share of the updates) about 8 and about 1, as the
accountant computes them; the table shows the epsilon the server's accountant
reported.  Writes ``bench/results/privacy.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from federation_runs import (
    ROOT,
    SPECIALTIES,
    own_domain_losses,
    publish,
    run_federation,
    update_events,
)

sys.path.insert(0, str(ROOT))
from fedmoe_flwr.privacy import noise_for_epsilon  # noqa: E402


def _merged(summary: dict) -> str:
    return f"{summary['updates']} ({sum(summary['rejected'].values())})"


def main() -> None:
    """Calibrate the clip, run at two epsilons, then the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--updates", type=int, default=30)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epsilons", type=float, nargs="+", default=[8.0, 1.0])
    ap.add_argument("--duration", type=float, default=300.0, help="seconds per run, at most")
    ap.add_argument("--work", type=Path, default=ROOT / ".fedmoe" / "bench-privacy")
    args = ap.parse_args()
    # A bounded duration: under strong local DP training can diverge (NaN losses are
    # rejected), so max-updates alone might never be reached.
    base = {"run.max-updates": args.updates, "run.duration": float(args.duration),
            "train.max-steps": args.steps, "train.sync-interval": 600.0, "run.seed": args.seed,
            "strategy.max-update-norm": 0.0}  # noised updates are large by design
    rows = []
    run = run_federation(args.work, "no-dp", {**base, "privacy.clip": 1e6})
    summary = json.loads((run / "summary.json").read_text())
    clip = statistics.median(e.delta_norm for e in update_events(run) if e.delta_norm is not None)
    rows.append(("no DP (not clipped)", "-", "-", "inf", own_domain_losses(summary),
                 _merged(summary)))
    per_node = math.ceil(args.updates / 4)  # four nodes; python's two share its updates
    for eps in args.epsilons:
        z = noise_for_epsilon(eps, per_node, 1e-5)
        run = run_federation(args.work, f"eps-{eps:g}", {
            **base, "privacy.clip": clip, "privacy.noise-multiplier": z,
            "privacy.max-epsilon": eps})  # a node stops once its next update would exceed it
        summary = json.loads((run / "summary.json").read_text())
        reported = max(summary["privacy"]["experts"].values())
        rows.append((f"epsilon ~ {eps:g}", f"{clip:.4f}", f"{z:.2f}", f"{reported:.2f}",
                     own_domain_losses(summary), _merged(summary)))
        print(rows[-1], flush=True)
    lines = ["| run | clip C | noise multiplier z | epsilon reported (max over nodes) | "
             "updates merged (rejected) | " + " | ".join(f"{s} loss" for s in SPECIALTIES)
             + " |", "|---|---:|---:|---:|---:|" + "---:|" * len(SPECIALTIES)]
    for name, c, z, eps, losses, merged in rows:
        lines.append(f"| {name} | {c} | {z} | {eps} | {merged} | "
                     + " | ".join(f"{losses[s]:.3f}" for s in SPECIALTIES) + " |")
    lines += ["", f"At most {args.updates} merged updates of {args.steps} steps and "
                  f"{args.duration:.0f} s per run; the noise is calibrated for {per_node} updates "
                  f"per node at delta 1e-5 and privacy.max-epsilon stops a node at the target; "
                  f"seed {args.seed}; C is the median delta norm of the no-DP run; losses are "
                  f"each expert's final held-out loss on its own domain; rejected updates are "
                  f"training that diverged under the noise (NaN loss)."]
    publish("privacy", lines)


if __name__ == "__main__":
    main()
