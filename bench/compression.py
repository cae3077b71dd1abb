"""Bytes on the wire and final quality with fp32, fp16 and int8 updates.

Reproduce (about 10 minutes on 2 CPU cores)::

    bash scripts/bench.sh compression

The default federation (four simulated SuperNodes, tiny Qwen) once per
``comm.compression`` value, and fp32 twice, same seed and budget:
``run.max-updates`` merged updates of ``train.max-steps`` steps each, so every
run does the same local work whatever the machine's speed.  Which node's update
lands when still varies from run to run (the federation is asynchronous), so
the second fp32 run shows how far two identical runs land apart: the floor
under any difference the compression makes.  Reports bytes per update each way
relative to fp32 and each expert's final held-out loss on its own domain.
Writes ``bench/results/compression.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from federation_runs import ROOT, SPECIALTIES, own_domain_losses, publish, run_federation

RUNS = (("none", "none"), ("none, again", "none"), ("fp16", "fp16"), ("int8", "int8"))


def main() -> None:
    """Three runs, then the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--updates", type=int, default=30)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work", type=Path, default=ROOT / ".fedmoe" / "bench-compression")
    args = ap.parse_args()
    results = {}
    for label, compression in RUNS:
        run = run_federation(args.work, label.replace(", ", "-"), {
            "comm.compression": compression, "run.max-updates": args.updates,
            "run.duration": 3600.0, "train.max-steps": args.steps,
            "train.sync-interval": 600.0, "run.seed": args.seed})
        summary = json.loads((run / "summary.json").read_text())
        results[label] = {"bytes": summary["bytes_per_update"],
                          "loss": own_domain_losses(summary), "updates": summary["updates"]}
        print(label, results[label], flush=True)
    ref = results["none"]
    lines = ["| compression | server -> node per update | vs fp32 | node -> server per update "
             "| vs fp32 | " + " | ".join(f"{s} loss (vs fp32)" for s in SPECIALTIES) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(SPECIALTIES)]
    for c, r in results.items():
        sent, recv = r["bytes"]["sent"], r["bytes"]["received"]
        losses = " | ".join(f"{r['loss'][s]:.3f} ({r['loss'][s] / ref['loss'][s] - 1:+.1%})"
                            for s in SPECIALTIES)
        lines.append(f"| {c} | {sent / 1024:.1f} KiB | {sent / ref['bytes']['sent']:.2f}x | "
                     f"{recv / 1024:.1f} KiB | {recv / ref['bytes']['received']:.2f}x | "
                     f"{losses} |")
    lines += ["", f"{args.updates} merged updates of {args.steps} steps each per run, seed "
                  f"{args.seed}; losses are each expert's final held-out loss on its own domain "
                  f"(the nodes' evaluation)."]
    publish("compression", lines)


if __name__ == "__main__":
    main()
