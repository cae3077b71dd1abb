"""Whether a warm worker's memory stays flat over many messages.

Reproduce (about 5 minutes on 2 CPU cores)::

    bash scripts/bench.sh warm_memory

One warm SuperNode (tiny model, ``train.max-steps = 2``) on an insecure local
SuperLink trains for ``--updates`` updates; after each update the benchmark reads
the worker process's resident memory (``/proc/PID/status`` VmRSS; the pid comes
from the ``process-id`` metric of the update) and reports it after the 5th and the
last update, side by side.  Appends its table to ``bench/results/warm_memory.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from warm_vs_cold import FEDMOE, deploy, free_port  # noqa: E402

from fedmoe_flwr.events import Update, of_kind, read_events  # noqa: E402


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> None:
    """Run one warm node for N updates, sampling its worker's RSS after each."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--updates", type=int, default=50)
    ap.add_argument("--work", type=Path, default=ROOT / ".fedmoe" / "bench-memory")
    args = ap.parse_args()
    env = {**os.environ, "FEDMOE_DEPLOY": str(args.work / "deploy"),
           "FEDMOE_SUPERLINK_PORT": str(free_port())}
    out = args.work / "out"
    samples: dict[int, float] = {}
    try:
        deploy(env, "superlink", "start", "--insecure")
        deploy(env, "supernode", "start", "py", "--insecure", "--specialty", "python_expert",
               "--data", "data/python.jsonl")
        run = subprocess.Popen(
            [FEDMOE, "deploy", "submit", "--run-config",
             f"run.duration=3600 run.max-updates={args.updates} train.max-steps=2 "
             f"run.specialties='python_expert' run.name='m' run.output-dir='{out}'"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        metrics = out / "m" / "metrics.jsonl"
        while run.poll() is None:
            if metrics.exists():
                ups = list(of_kind(read_events(metrics), Update))
                if ups and len(ups) not in samples and ups[-1].process_id is not None:
                    samples[len(ups)] = rss_mib(ups[-1].process_id)
            time.sleep(0.5)
    finally:
        deploy(env, "stop-all", check=False)
    first = min((n for n in samples if n >= 5), default=min(samples))
    last = max(samples)
    lines = ["| worker RSS after update | MiB |", "|---:|---:|",
             f"| {first} | {samples[first]:.0f} |", f"| {last} | {samples[last]:.0f} |", "",
             f"Growth from update {first} to {last}: {samples[last] - samples[first]:+.0f} MiB "
             f"({samples[last] / samples[first]:.3f}x); samples at every update: "
             + ", ".join(f"{n}: {v:.0f}" for n, v in sorted(samples.items()))]
    path = ROOT / "bench" / "results" / "warm_memory.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
