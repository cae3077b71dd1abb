"""Warm workers vs a new ClientApp process per message, in a real co-located deployment.

Reproduce (about 12 minutes on 2 CPU cores)::

    bash scripts/bench.sh warm_vs_cold

For each mode (``cold``: ``flower-supernode --isolation subprocess``, a new
``flwr-clientapp`` process per message, the stock behaviour; ``warm``: the
worker of ``fedmoe_flwr.node.worker``) and each ``train.sync-interval``, the
benchmark starts an insecure SuperLink and three SuperNodes on 127.0.0.1 with
``fedmoe deploy`` (tiny model, one specialty each), runs the federation
for a fixed time, stops every process it started, and reads the per-update
split from ``metrics.jsonl``:

- round trip: the server's push of a train message -> its reply merged;
- train: seconds the node trained; overhead = round trip - train;
- process / load: start-up of the handling process, and model load + data.

Share of node time training = sum(train) / sum(round trip): between a reply
and the next train message a node has nothing to do.  Second table: the
model load alone, for the embedded tiny model and for a random-initialised
Qwen2-0.5B-sized model (hidden 896, 24 layers, 4-bit), which a cold node pays
on every message and a warm one once.  Writes ``bench/results/warm_vs_cold.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fedmoe_flwr.events import Update, of_kind, read_events

ROOT = Path(__file__).resolve().parents[1]
FEDMOE = str(Path(sys.executable).with_name("fedmoe"))  # what scripts/deploy.sh wraps
NODES = {"py": ("python_expert", "data/python.jsonl"), "sql": ("sql_expert", "data/sql.jsonl"),
         "docs": ("docs_expert", "data/docs.jsonl")}


def deploy(env: dict, *args: str, check: bool = True, timeout: float = 300) -> str:
    """Run ``fedmoe deploy`` (what ``scripts/deploy.sh`` wraps) with the case's state and port."""
    proc = subprocess.run([FEDMOE, "deploy", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise RuntimeError(f"fedmoe deploy {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for the case's SuperLink."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_case(mode: str, interval: float, duration: float, work: Path) -> list[dict]:
    """One deployment in one mode; returns the update events of its run."""
    state = work / f"{mode}-{interval:g}"
    env = {**os.environ, "FEDMOE_DEPLOY": str(state / "deploy"),
           "FEDMOE_SUPERLINK_PORT": str(free_port())}
    try:
        deploy(env, "superlink", "start", "--insecure")
        for name, (specialty, data) in NODES.items():
            deploy(env, "supernode", "start", name, "--insecure", "--specialty", specialty,
                   "--data", data, *(["--cold"] if mode == "cold" else []))
        out = state / "out"
        deploy(env, "submit", "--run-config",
               f"run.duration={duration} train.sync-interval={interval} run.name='b' "
               f"run.output-dir='{out}'", timeout=duration + 900)
    finally:
        deploy(env, "stop-all", check=False)
    return list(of_kind(read_events(out / "b" / "metrics.jsonl"), Update))


def summarise(updates: list[Update]) -> dict:
    """Medians of the per-update split, and the share of node time spent training."""
    rt = [e.round_trip for e in updates]
    train = [e.train_seconds for e in updates]
    overhead = [r - t for r, t in zip(rt, train, strict=True)]
    later = [e for e in updates if e.process_seconds < 5] or updates
    return {"updates": len(updates), "round_trip": statistics.median(rt),
            "train": statistics.median(train), "overhead": statistics.median(overhead),
            "process": statistics.median(e.process_seconds for e in updates),
            "load": statistics.median(e.load_seconds for e in later),
            "share": sum(train) / sum(rt),
            "pids_per_node": statistics.median(
                len({e.process_id for e in updates if e.node == n})
                for n in {e.node for e in updates})}


def load_seconds(name: str) -> float:
    """Seconds to load and 4-bit quantize a model with the nodes' own loader (fresh process)."""
    code = ("import time,sys; from fedmoe_flwr.config import ModelConfig; "
            "from fedmoe_flwr.node.model import load_base; t=time.perf_counter(); "
            f"load_base(ModelConfig(name={name!r})); print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def build_qwen2_05b_shape(path: Path) -> Path:
    """A random Qwen2 with Qwen2-0.5B's layer shapes (hidden 896, 24 layers), tiny vocab."""
    if (path / "config.json").exists():
        return path
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from fedmoe_flwr.node.tiny_model import ensure_tiny_model

    tok = AutoTokenizer.from_pretrained(str(ensure_tiny_model()))
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=896, intermediate_size=4864,
                      num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                      max_position_embeddings=2048, tie_word_embeddings=True)
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def main() -> None:
    """Every (interval, mode) case, then the load table; results to bench/results/."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--intervals", default="10,30", help="train.sync-interval values (s)")
    ap.add_argument("--duration", type=float, default=120.0,
                    help="seconds of training per case")
    ap.add_argument("--work", type=Path, default=ROOT / ".fedmoe" / "bench-warm")
    args = ap.parse_args()
    os.environ.setdefault("FEDMOE_CACHE", str(ROOT / ".fedmoe" / "cache"))
    rows = []
    for interval in [float(x) for x in args.intervals.split(",")]:
        for mode in ("cold", "warm"):
            t0 = time.time()
            stats = summarise(run_case(mode, interval, args.duration, args.work))
            rows.append({"mode": mode, "interval": interval, **stats})
            print(f"{mode} @ {interval:g}s: {stats} ({time.time() - t0:.0f}s)", flush=True)
    big = build_qwen2_05b_shape(args.work / "qwen2-0.5b-shape")
    loads = {"qwen2-tiny": load_seconds("qwen2-tiny"), "Qwen2-0.5B shape": load_seconds(str(big))}
    write(rows, loads)


def write(rows: list[dict], loads: dict[str, float]) -> None:
    """The two tables as Markdown (printed and saved) and the raw numbers as JSON."""
    lines = ["| sync-interval | mode | updates | round trip | train | overhead | process | "
             "load | node time training | processes per node |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['interval']:g} s | {r['mode']} | {r['updates']} | "
                     f"{r['round_trip']:.1f} s | {r['train']:.1f} s | {r['overhead']:.1f} s | "
                     f"{r['process']:.2f} s | {r['load']:.2f} s | {100 * r['share']:.0f}% | "
                     f"{r['pids_per_node']:g} |")
    ratio = []
    for interval in sorted({r["interval"] for r in rows}):
        by = {r["mode"]: r for r in rows if r["interval"] == interval}
        ratio.append(f"sync-interval {interval:g} s: warm overhead / cold overhead = "
                     f"{by['warm']['overhead'] / by['cold']['overhead']:.2f}")
    lines += ["", "Medians per update; " + "; ".join(ratio) + ".", "",
              "| model (4-bit) | load + quantize | cold: paid per message | warm: paid |",
              "|---|---:|---:|---:|"]
    for name, sec in loads.items():
        lines.append(f"| {name} | {sec:.1f} s | {sec:.1f} s | once per worker |")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "warm_vs_cold.md").write_text("\n".join(lines) + "\n")
    (out / "warm_vs_cold.json").write_text(json.dumps({"rows": rows, "loads": loads},
                                                      indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
