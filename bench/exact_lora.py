"""FFA-LoRA against standard LoRA: bytes per update, and learning with several nodes per expert.

Reproduce (about 35 minutes on 2 CPU cores)::

    bash scripts/bench.sh exact_lora
    bash scripts/bench.sh exact_lora --scenarios b --budget 40   # ~12 min check

Two parts, one run:

1. **Bytes per update** of one reply, ``standard`` (A and B) against ``ffa``
   (B only), through the nodes' own encoder (``fedmoe_flwr.codec.encode``) for
   every ``comm.compression``, at the LoRA shapes of qwen2-tiny, SmolLM2-135M,
   Qwen2-0.5B and Qwen2-7B (rank ``model.lora-r``, every linear module).  The
   ratio to the standard fp32 record is what travels: B is ``out x r``, A is
   ``r x in``, so B's share is the models' output widths over all widths
   (above one half where the MLP widens: gate and up project out to the
   intermediate size).
2. **Learning**: the ``async_vs_sync`` machinery (one actor per simulated node,
   dilated time, paced steps, every version scored afterwards by one
   evaluator) on scenario (b), two nodes per specialty, and (c), four nodes
   per specialty, with ``fedavg`` and ``fedasync`` rows for each variant.  The
   target of a scenario is standard FedAvg's final held-out loss, as in
   ``async_vs_sync``.

Writes ``bench/results/exact_lora.md`` and ``exact_lora.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import async_vs_sync as avs  # noqa: E402

from fedmoe_flwr.codec import COMPRESSIONS, encode  # noqa: E402
from fedmoe_flwr.config import parse_run_config  # noqa: E402
from fedmoe_flwr.lora import b_part  # noqa: E402
from fedmoe_flwr.node.tiny_model import TINY_DIMS  # noqa: E402

ROWS = ("fedavg", "fedavg-ffa", "fedasync", "fedasync-ffa")
# (hidden, intermediate, layers, key/value width): the published configs' linear shapes.
SHAPES = {
    "qwen2-tiny": (TINY_DIMS["hidden_size"], TINY_DIMS["intermediate_size"],
                   TINY_DIMS["num_hidden_layers"],
                   TINY_DIMS["hidden_size"] * TINY_DIMS["num_key_value_heads"]
                   // TINY_DIMS["num_attention_heads"]),
    "SmolLM2-135M": (576, 1536, 30, 192),
    "Qwen2-0.5B": (896, 4864, 24, 128),
    "Qwen2-7B": (3584, 18944, 28, 512),
}


def adapter_of(shape: tuple[int, int, int, int], rank: int, seed: int = 0) -> dict:
    """Random float32 LoRA weights under PEFT's key names, for every linear module."""
    hidden, inter, layers, kv = shape
    io = {"self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (hidden, kv),
          "self_attn.v_proj": (hidden, kv), "self_attn.o_proj": (hidden, hidden),
          "mlp.gate_proj": (hidden, inter), "mlp.up_proj": (hidden, inter),
          "mlp.down_proj": (inter, hidden)}
    rng = np.random.default_rng(seed)
    out = {}
    for layer in range(layers):
        for module, (fan_in, fan_out) in io.items():
            key = f"base_model.model.model.layers.{layer}.{module}"
            out[f"{key}.lora_A.weight"] = rng.standard_normal((rank, fan_in), np.float32)
            out[f"{key}.lora_B.weight"] = rng.standard_normal((fan_out, rank), np.float32)
    return out


def bytes_table(rank: int) -> tuple[list[str], dict]:
    """Record bytes of one update per model, variant and compression, and the ratios."""
    lines = [f"**Bytes of one update** (rank {rank}, every linear module), as a ratio to the "
             "standard fp32 record:", "",
             "| model | standard, none (MB) | " + " | ".join(
                 f"{c} standard | {c} ffa" for c in COMPRESSIONS)[len("none standard | "):]
             + " |", "|---|---:|" + "---:|" * (2 * len(COMPRESSIONS) - 1)]
    figures = {}
    for model, shape in SHAPES.items():
        weights = adapter_of(shape, rank)
        sizes = {(c, v): encode(w, c).count_bytes() for c in COMPRESSIONS
                 for v, w in (("standard", weights), ("ffa", b_part(weights)))}
        full = sizes["none", "standard"]
        figures[model] = {f"{c}/{v}": n for (c, v), n in sizes.items()}
        ratios = [f"{sizes[c, v] / full:.3f}x" for c in COMPRESSIONS
                  for v in ("standard", "ffa")][1:]
        lines.append(f"| {model} | {full / 1e6:.2f} | " + " | ".join(ratios) + " |")
    return lines, figures


def learning_table(results: list, targets: dict) -> list[str]:
    """One block per scenario: time to standard FedAvg's target, finals, bytes per update."""
    out = []
    for key, scenario in avs.SCENARIOS.items():
        rows = [r for r in results if r.scenario == key]
        if not rows:
            continue
        sync = next(r for r in rows if r.strategy == "fedavg")
        out += [f"**Scenario ({key})**: {scenario.title} ({scenario.num_nodes} nodes; speed "
                f"factors run as {avs.dilated(scenario.speed_factors)}, time dilated "
                f"{avs.dilation(scenario.speed_factors):.2f}x to fit {os.cpu_count()} cores). "
                "Target (standard FedAvg's final held-out loss): "
                + ", ".join(f"{s.split('_')[0]} {v:.3f}" for s, v in targets[key].items()), "",
                "| strategy | LoRA | time to target, all (s) | vs FedAvg | python / sql / docs "
                "time to target (s) | final loss python / sql / docs | updates | "
                "KB per update sent / received |",
                "|---|---|---:|---:|---|---|---:|---:|"]
        for r in rows:
            ratio, per, finals = avs.timing_cells(r, sync)
            name, _, variant = r.strategy.partition("-")
            per_update = r.summary["bytes_per_update"]
            out.append(f"| {name} | {variant or 'standard'} | {avs._fmt_s(r.time_to_target)} "
                       f"| {ratio} | {per} | {finals} | {r.summary['updates']} | "
                       f"{per_update['sent'] / 1e3:.0f} / {per_update['received'] / 1e3:.0f} |")
        out.append("")
    return out


def main(argv: list[str] | None = None) -> int:
    """Bytes first (seconds), then the federations, then one table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    avs.add_options(ap, "b,c", ",".join(ROWS))
    ap.set_defaults(work=avs.ROOT / "outputs" / "bench-exact-lora")
    args = ap.parse_args(argv)
    strategies = [s.strip() for s in args.strategies.split(",")]
    if "fedavg" not in strategies:
        ap.error("--strategies must include fedavg: it defines the target")
    t0 = time.perf_counter()
    rank = parse_run_config({}).model.lora_r
    lines, figures = bytes_table(rank)
    print("\n".join(lines), flush=True)
    results, targets = avs.compare(args, [k.strip() for k in args.scenarios.split(",")],
                                   strategies)
    wall = time.perf_counter() - t0
    lines = [f"Learning: budget {args.budget:.0f} s of training per federation, {args.steps} "
             f"local steps per update, seed {args.seed}, one run per cell, steps paced at "
             f"{args.seconds_per_token * 1e6:.2f} us per padded token x speed factor; total "
             f"wall time {wall / 60:.1f} min. Bytes per update are train messages only "
             "(sent: the expert to the node; received: the node's reply).", "",
             *learning_table(results, targets), *lines]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "exact_lora.md").write_text("\n".join(lines) + "\n")
    (args.out / "exact_lora.json").write_text(json.dumps({
        "bytes": figures, "targets": targets,
        "runs": [{"scenario": r.scenario, "strategy": r.strategy, "curves": r.curves,
                  "time_to_target": r.time_to_target, "per_specialty": r.per_specialty,
                  "updates": r.summary["updates"],
                  "bytes_per_update": r.summary["bytes_per_update"]} for r in results]},
        indent=1))
    print("\n".join(lines))
    print(f"wrote {args.out}/exact_lora.md, .json in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
