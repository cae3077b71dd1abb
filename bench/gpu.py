"""The GPU path: load time, training tokens/s and peak memory of a node on CUDA, by model size.

Reproduce on a machine with a CUDA GPU (under ten minutes on one H100/H200 class GPU)::

    bash scripts/bench.sh gpu                    # tiny, 0.5B-shaped, 7B-shaped, + a federation
    bash scripts/bench.sh gpu --models tiny,0.5b --skip-federation

Nothing is downloaded.  Besides the embedded ``qwen2-tiny``, it builds two
randomly initialised ``Qwen2ForCausalLM`` checkpoints with the dimensions of
Qwen2-0.5B and Qwen2-7B (bf16 safetensors in the model cache, built on the GPU),
and loads each through the node's own path (``load_base``: nf4 4-bit with bf16
compute, ``prepare_model_for_kbit_training``, the run's LoRA adapter).  Per model:

- load: seconds of the first message's model setup (checkpoint -> 4-bit on the GPU);
- tokens/s: training tokens per second of ``train_for_budget`` (batch x sequence
  of random token ids, after warm-up steps);
- peak GPU memory during training (``torch.cuda.max_memory_allocated``).

With two or more GPUs it also trains one node on 1 rank and on every GPU (node
config ``gpus``, DDP over NCCL) on the 0.5B shape and reports the ratio.  Then a
short federation (``fedmoe run``, qwen2-tiny, 60 s, 3 simulated nodes sharing
the GPU) checks the whole loop on CUDA.  Results: ``bench/results/gpu.md`` and
``gpu.json``.  ``--allow-cpu`` runs the same code on the CPU (tiny model only),
which is how the script itself is tested where there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedmoe_flwr.config import parse_run_config  # noqa: E402
from fedmoe_flwr.events import Register, of_kind, read_events  # noqa: E402
from fedmoe_flwr.node import ddp  # noqa: E402
from fedmoe_flwr.node import model as node_model  # noqa: E402
from fedmoe_flwr.node.model import ensure_adapter, load_base  # noqa: E402
from fedmoe_flwr.node.tiny_model import cache_root, ensure_tiny_model  # noqa: E402
from fedmoe_flwr.node.training import TrainSpec, train_for_budget  # noqa: E402

SHAPES = {  # Qwen2 configs, dimensions only (config.json of the published models)
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                 tie_word_embeddings=True, max_position_embeddings=32768),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
               tie_word_embeddings=False, max_position_embeddings=32768),
}


def shaped_checkpoint(shape: str, device: torch.device) -> Path:
    """A random-weight Qwen2 checkpoint of the named shape, built once into the cache."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    out = cache_root() / f"qwen2-{shape}-random"
    if (out / "config.json").is_file():
        return out
    t0 = time.perf_counter()
    config = Qwen2Config(**SHAPES[shape], rope_theta=1_000_000.0, torch_dtype="bfloat16")
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp, max_shard_size="5GB")
    AutoTokenizer.from_pretrained(ensure_tiny_model()).save_pretrained(tmp)  # ids < 2048
    tmp.rename(out)
    del model
    torch.cuda.empty_cache() if device.type == "cuda" else None
    print(f"  built {out.name} in {time.perf_counter() - t0:.0f}s", flush=True)
    return out


def run_config(model: str, seq: int, batch: int) -> dict:
    """The node's run config for one model of the benchmark."""
    name = "qwen2-tiny" if model == "tiny" else str(shaped_checkpoint(model, _device()))
    return {"model.name": name, "model.source": "auto", "model.quantization": 4,
            "model.gradient-checkpointing": model != "tiny", "train.max-seq-len": seq,
            "train.batch-size": batch}


def _device() -> torch.device:
    return node_model.pick_device()


def _rows(n: int, seq: int, vocab: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ids = [rng.randrange(3, vocab) for _ in range(seq)]
        rows.append({"input_ids": ids, "labels": list(ids), "prompt_len": 0})
    return rows


def measure(model: str, seq: int, batch: int, steps: int, warmup: int) -> dict:
    """Load, then train one node's adapter; the numbers of one table row."""
    device = _device()
    run = run_config(model, seq, batch)
    cfg = parse_run_config(run)
    node_model._CACHE.clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    loaded = load_base(cfg.model)
    ensure_adapter(loaded, "python_expert", cfg.model)
    if device.type == "cuda":
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    rows = _rows(256, seq, len(loaded.tokenizer))
    pad = loaded.tokenizer.pad_token_id
    train_for_budget(loaded.peft_model, rows, pad_id=pad, device=device,
                     spec=TrainSpec(batch, 1e-4, 1e9, warmup))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    r = train_for_budget(loaded.peft_model, rows, pad_id=pad, device=device,
                         spec=TrainSpec(batch, 1e-4, 1e9, steps, seed=1))
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    params = sum(p.numel() for p in loaded.peft_model.parameters())
    trainable = sum(p.numel() for p in loaded.peft_model.parameters() if p.requires_grad)
    row = {"model": model, "device": str(device), "dtype": str(node_model.compute_dtype(device)),
           "params_stored": params, "trainable": trainable, "batch": batch, "seq": seq,
           "load_s": load_s, "tokens_per_s": r.tokens / r.seconds, "step_s": r.seconds / r.steps,
           "peak_gib": peak}
    print(f"  {model}: load {load_s:.1f}s, {row['tokens_per_s']:.0f} tokens/s, "
          f"{row['step_s']:.2f} s/step, peak {peak:.2f} GiB", flush=True)
    if model != "0.5b" or device.type != "cuda" or torch.cuda.device_count() < 2:
        return row
    world = torch.cuda.device_count()
    node = {"specialty": "python_expert", "data-path": "data/python.jsonl",
            "gpus": world}
    group = ddp.group_for(world, run, node, device, 600.0)
    try:
        job = ddp.Job(run, node, "python_expert", TrainSpec(batch, 1e-4, 1e9, warmup), False)
        group.train(loaded.peft_model, rows, pad, job)
        r2 = group.train(loaded.peft_model, rows, pad, ddp.Job(
            run, node, "python_expert", TrainSpec(batch, 1e-4, 1e9, steps, seed=1), False))
    finally:
        ddp.close_groups()
    row["ddp"] = {"ranks": world, "tokens_per_s": r2.tokens / r2.seconds,
                  "ratio": (r2.tokens / r2.seconds) / row["tokens_per_s"]}
    print(f"  0.5b on {world} GPUs (DDP): {row['ddp']['tokens_per_s']:.0f} tokens/s = "
          f"{row['ddp']['ratio']:.2f}x one GPU", flush=True)
    return row


def federation(seconds: float) -> dict:
    """A short simulated federation on the GPU; what its summary says."""
    out = ROOT / ".fedmoe" / "bench-gpu"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fedmoe_flwr.tools.cli", "run", "--nodes", "3",
         "--run-config", f"run.duration={seconds}", "--run-config", f"run.output-dir='{out}'",
         "--run-config", "run.name='gpu'"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "NUM_SUPERNODES": "3"})
    summary_file = out / "gpu" / "summary.json"
    if proc.returncode != 0 or not summary_file.is_file():
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return {"ok": False, "seconds": time.perf_counter() - t0}
    summary = json.loads(summary_file.read_text())
    events = read_events(out / "gpu" / "metrics.jsonl")
    devices = sorted({e.device for e in of_kind(events, Register)})
    return {"ok": True, "seconds": time.perf_counter() - t0, "devices": devices,
            "updates": summary.get("updates"), "experts": sorted(summary.get("experts", {}))}


def table(rows: list[dict]) -> str:
    """The markdown table of the results file."""
    lines = ["| model | compute | stored params | trainable | batch x seq | first load (s) | "
             "tokens/s | s/step | peak GPU memory (GiB) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['dtype'].removeprefix('torch.')} | "
                     f"{r['params_stored'] / 1e6:.0f} M | {r['trainable'] / 1e6:.2f} M | "
                     f"{r['batch']} x {r['seq']} | {r['load_s']:.1f} | "
                     f"{r['tokens_per_s']:.0f} | {r['step_s']:.2f} | {r['peak_gib']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    """Measure each model, then the federation, and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny,0.5b,7b")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--federation-seconds", type=float, default=60.0)
    ap.add_argument("--skip-federation", action="store_true")
    ap.add_argument("--allow-cpu", action="store_true",
                    help="run on the CPU when there is no GPU (a check of the script)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    if not torch.cuda.is_available() and not args.allow_cpu:
        sys.exit("bench/gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); "
                 "--allow-cpu runs it on the CPU as a check")
    models = [m.strip() for m in args.models.split(",")]
    unknown = [m for m in models if m != "tiny" and m not in SHAPES]
    if unknown:
        sys.exit(f"--models: unknown {unknown}; choose from tiny, {', '.join(SHAPES)}")
    rows = [measure(m, args.seq, args.batch, args.steps, args.warmup) for m in models]
    fed = None if args.skip_federation else federation(args.federation_seconds)
    text = table(rows)
    print(text)
    if fed is not None:
        print(f"federation: {fed}")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (--allow-cpu)"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps({"gpu": gpu, "rows": rows,
                                                   "federation": fed}, indent=2) + "\n")
    ddp_lines = [f"- {r['model']} on {r['ddp']['ranks']} GPUs (DDP): "
                 f"{r['ddp']['tokens_per_s']:.0f} tokens/s, {r['ddp']['ratio']:.2f}x one GPU"
                 for r in rows if "ddp" in r]
    (args.out / "gpu.md").write_text(
        f"# The GPU path on {gpu}\n\n`bash scripts/bench.sh gpu`, {time.strftime('%Y-%m-%d')}:"
        f" nf4 base, LoRA r {parse_run_config({}).model.lora_r}, random token ids; 0.5b and "
        f"7b are random-weight Qwen2 checkpoints of those shapes.\n\n{text}\n\n"
        + ("\n".join(ddp_lines) + "\n\n" if ddp_lines else "")
        + (f"Federation (`fedmoe run`, 3 nodes, {args.federation_seconds:.0f} s): {fed}\n"
           if fed else ""))


if __name__ == "__main__":
    main()
