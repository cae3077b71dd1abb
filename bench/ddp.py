"""Examples per second of one node training on 1 rank and on 2 DDP ranks, side by side.

Reproduce (about 6 minutes on 2 CPU cores; nothing else should be running)::

    bash scripts/bench.sh ddp                       # qwen2-tiny and smollm2-135m
    bash scripts/bench.sh ddp --models qwen2-tiny   # the quick one

Each rank runs one torch thread (``train.torch-threads = 1``), so on a 2-core
machine two ranks use both cores where one rank uses one: the ratio shows what
the all-reduce and the split batch cost against perfect scaling (2.0).  Both
arms train the same adapter with the node's real code path (the ClientApp's
rank group, :mod:`fedmoe_flwr.node.ddp`): 1 rank with ``batch-size`` rows per
step, 2 ranks with ``batch-size`` rows each (a global batch twice as large),
for ``--steps`` steps after ``--warmup`` steps, repeated ``--repeats`` times
alternating the arms; the table reports medians.  Results go to
``bench/results/ddp.md`` and ``ddp.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedmoe_flwr.logs import setup_logging  # noqa: E402

setup_logging()  # before transformers is imported: no bars, the ranks inherit it
from fedmoe_flwr.config import parse_run_config  # noqa: E402
from fedmoe_flwr.node import ddp  # noqa: E402
from fedmoe_flwr.node.adapters import get_adapter_weights, set_adapter_weights  # noqa: E402
from fedmoe_flwr.node.model import ensure_adapter, load_base  # noqa: E402
from fedmoe_flwr.node.settings import node_data, node_settings  # noqa: E402
from fedmoe_flwr.node.training import TrainSpec, train_for_budget  # noqa: E402

PRESETS = {  # model -> run config: steps long enough that compute, not overhead, decides
    "qwen2-tiny": {"model.name": "qwen2-tiny", "train.max-seq-len": 256,
                   "train.batch-size": 8},
    "smollm2-135m": {"model.name": "smollm2-135m", "model.quantization": 0,
                     "train.max-seq-len": 128, "train.batch-size": 2},
}
NODE = {"specialty": "python_expert", "data-path": "data/python.jsonl"}


def measure(model: str, steps: int, warmup: int, repeats: int) -> dict:
    """Median examples/s of each arm for one model."""
    run = {**PRESETS[model], "train.torch-threads": 1}
    cfg = parse_run_config(run)
    torch.set_num_threads(1)
    node = node_settings(NODE, cfg)
    loaded = load_base(cfg.model)
    ensure_adapter(loaded, node.specialty, cfg.model)
    _, rows, _ = node_data(node, cfg, loaded.tokenizer, loaded.fingerprint)
    start = get_adapter_weights(loaded.peft_model, node.specialty)
    pad = loaded.tokenizer.pad_token_id
    group = ddp.group_for(2, run, {**NODE, "gpus": 2}, loaded.device, 600.0)
    rates: dict[int, list[float]] = {1: [], 2: []}
    batch = cfg.train.batch_size

    def train(world: int, n_steps: int, seed: int):
        spec = TrainSpec(batch, 1e-4, 1e9, n_steps, seed=seed)
        if world == 1:
            return train_for_budget(loaded.peft_model, rows, pad_id=pad, device=loaded.device,
                                    spec=spec)
        return group.train(loaded.peft_model, rows, pad,
                           ddp.Job(run, {**NODE, "gpus": 2}, node.specialty, spec, False))

    try:
        for rep in range(repeats):
            for world in (1, 2):
                set_adapter_weights(loaded.peft_model, node.specialty, start)
                train(world, warmup, seed=2 * rep)
                t0 = time.perf_counter()
                r = train(world, steps, seed=2 * rep + 1)
                wall = time.perf_counter() - t0
                rates[world].append(r.examples / wall)
                print(f"  {model} repeat {rep + 1}: {world} rank(s) {r.examples} examples "
                      f"in {wall:.1f}s = {r.examples / wall:.2f}/s", flush=True)
    finally:
        ddp.close_groups()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    return {"model": model, "batch_per_rank": cfg.train.batch_size,
            "max_seq_len": cfg.train.max_seq_len, "steps": steps, "repeats": repeats,
            "one_rank": one, "two_ranks": two, "ratio": two / one,
            "samples": {str(k): v for k, v in rates.items()}}


def table(results: list[dict]) -> str:
    """The markdown table the results file and the terminal show."""
    lines = ["| model | rows/rank/step | seq len | 1 rank (ex/s) | 2 ranks (ex/s) | ratio |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['batch_per_rank']} | {r['max_seq_len']} | "
                     f"{r['one_rank']:.2f} | {r['two_ranks']:.2f} | **{r['ratio']:.2f}x** |")
    return "\n".join(lines)


def main() -> None:
    """Measure each model's two arms and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="qwen2-tiny,smollm2-135m")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    results = [measure(m.strip(), args.steps, args.warmup, args.repeats)
               for m in args.models.split(",")]
    text = table(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ddp.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "ddp.md").write_text(
        "# One node on 1 rank vs 2 DDP ranks\n\n"
        f"`bash scripts/bench.sh ddp` on {torch.get_num_threads()} thread per rank, "
        f"{time.strftime('%Y-%m-%d')}; medians of {args.repeats} alternating repeats of "
        f"{args.steps} steps (after {args.warmup} warm-up steps).  Each rank takes "
        "`rows/rank/step` rows of one global batch; 2.0x would be perfect scaling.\n\n"
        f"{text}\n")


if __name__ == "__main__":
    main()
