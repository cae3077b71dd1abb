"""What one update costs the server, at real adapter shapes, with the project's own code.

Reproduce (about 6 minutes on 2 CPU cores, ~6 GB of memory)::

    bash scripts/bench.sh server_cost

Random LoRA weights (r = 8 on all seven linear projections) with the layer shapes of
Qwen2-0.5B (24 layers: 4.4M parameters, 17.6 MB float32) and Qwen2-7B (28 layers: 20.2M,
80.7 MB), with 3 and 10 experts.  Per update, median of ``--repeats`` runs on one thread:

- FedAsync merge (``merge.rules.fedasync_mix``) and, measured in the same run over the
  same bytes, a bare numpy axpy (``y *= 1 - a; y += a x`` on one contiguous vector);
- wire codec: decoding a reply (``weights.from_array_record``) and encoding weights
  (``to_array_record``), and validation (``validate_update`` + the norm bound);
- the whole server step on the loop's thread: decode, validate, merge,
  ``Federation.publish`` (which queues the checkpoint and, on its interval, the gateway)
  and encoding the new version for the next dispatch;
- what the background workers do: the expert checkpoint (atomic, fsync'd), the ``cat``
  gateway rebuild and its checkpoint;
- ``svd`` gateway rebuild (from the stacked factors: k x k Gram roots + a small SVD per module).

Writes ``bench/results/server_cost.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from fedmoe_flwr.config import parse_run_config  # noqa: E402
from fedmoe_flwr.merge.gateway import build_gateway, gateway_coefficients  # noqa: E402
from fedmoe_flwr.merge.rules import fedasync_mix  # noqa: E402
from fedmoe_flwr.merge.validation import update_norm_ratio, validate_update  # noqa: E402
from fedmoe_flwr.server.artifacts import RunDirectory  # noqa: E402
from fedmoe_flwr.server.experts import ExpertState  # noqa: E402
from fedmoe_flwr.server.federation import Federation, GatewayPlan  # noqa: E402
from fedmoe_flwr.server.memory import keep_freed_memory  # noqa: E402
from fedmoe_flwr.server.messenger import Messenger  # noqa: E402
from fedmoe_flwr.weights import Weights  # noqa: E402
from fedmoe_flwr.wire import from_array_record, to_array_record  # noqa: E402

# (hidden, intermediate, layers, key/value projection width) of the real models
SHAPES = {"Qwen2-0.5B": (896, 4864, 24, 128), "Qwen2-7B": (3584, 18944, 28, 512)}
R = 8


def adapter(model: str, seed: int) -> Weights:
    """Random LoRA factors with the model's module shapes, PEFT's saved keys."""
    hidden, inter, layers, kv = SHAPES[model]
    dims = {"q_proj": (hidden, hidden), "k_proj": (hidden, kv), "v_proj": (hidden, kv),
            "o_proj": (hidden, hidden), "gate_proj": (hidden, inter),
            "up_proj": (hidden, inter), "down_proj": (inter, hidden)}
    rng = np.random.default_rng(seed)
    out: Weights = {}
    for layer in range(layers):
        for name, (fan_in, fan_out) in dims.items():
            part = "self_attn" if name in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            key = f"base_model.model.model.layers.{layer}.{part}.{name}"
            out[f"{key}.lora_A.weight"] = rng.standard_normal((R, fan_in), np.float32) * 0.02
            out[f"{key}.lora_B.weight"] = rng.standard_normal((fan_out, R), np.float32) * 0.02
    return out


def timed(fn: Callable[[], object], repeats: int,
          after: Callable[[], object] | None = None, warmup: bool = True) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls; ``after`` runs untimed between them.

    One untimed call first: the allocator's first large allocations page-fault
    (a running server is past that).  ``after`` waits for the step's background
    work (checkpoint, gateway), so each timed step starts from a quiet machine,
    as steps a second apart would.
    """
    if warmup:
        fn()
        if after is not None:
            after()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if after is not None:
            after()
    return statistics.median(times)


def case(model: str, n_experts: int, repeats: int, svd_repeats: int) -> dict[str, float]:
    """Every measured cost of one (model, number of experts) case, in seconds."""
    experts = {f"e{i}": adapter(model, i) for i in range(n_experts)}
    client = {k: v + 0.001 for k, v in experts["e0"].items()}
    flat_y = np.concatenate([v.ravel() for v in experts["e0"].values()])
    flat_x = np.concatenate([v.ravel() for v in client.values()])

    def axpy() -> None:
        flat_y.__imul__(0.4)
        flat_y.__iadd__(0.6 * flat_x)

    cfg = parse_run_config({"run.specialties": ",".join(experts), "run.keep-versions": 2})
    reply = to_array_record(client)  # what a node sends; encoded on the node
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = RunDirectory(tmp, "bench", cfg.model, keep_versions=2)
        fed = Federation(GatewayPlan(cfg.gateway, cfg.model, cfg.run.seed), run_dir,
                         run_dir.events, time.monotonic)
        messenger = Messenger(cfg.run.message_ttl)
        for name, w in experts.items():
            fed.experts[name] = ExpertState(name, w)
        fed.refresh_gateway()
        coeffs = gateway_coefficients({n: 1 for n in experts}, "examples")
        expert = fed.experts["e0"]

        def step() -> None:
            update = from_array_record(reply)
            validate_update(expert.weights, update, base_version=expert.version,
                            current_version=expert.version)
            update_norm_ratio(update, expert.weights, expert.weights)
            fed.publish("e0", fedasync_mix(expert.weights, update, 0.6))
            # the new version, encoded once for the next dispatch
            messenger.weights_record("e0", expert.version, expert.weights)

        def gateway() -> None:
            fed.refresh_gateway()  # rebuild + atomic checkpoint, on the gateway worker

        out = {
            "merge": timed(lambda: fedasync_mix(experts["e0"], client, 0.6), repeats),
            "axpy": timed(axpy, repeats),
            "decode": timed(lambda: from_array_record(reply), repeats),
            "encode": timed(lambda: to_array_record(client), repeats),
            "validation": timed(lambda: (validate_update(
                experts["e0"], client, base_version=0, current_version=0),
                update_norm_ratio(client, experts["e0"], experts["e0"])), repeats),
            "step": timed(step, repeats, after=fed.flush),
            "checkpoint": timed(lambda: (fed.checkpoint(expert), fed.flush()), repeats),
            "cat": timed(lambda: build_gateway(experts, coeffs, "cat", rank=R, alpha=16),
                         repeats),
            "gateway": timed(gateway, repeats),
            "svd": timed(lambda: build_gateway(experts, coeffs, "svd", rank=R, alpha=16),
                         svd_repeats, warmup=False),
        }
        fed.close()
        run_dir.close()
    return out


def main() -> None:
    """All cases, then the table (printed and written to bench/results/)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--svd-repeats", type=int, default=2)
    args = ap.parse_args()
    keep_freed_memory()  # as server_app.py does
    cols = [(m, n) for m in SHAPES for n in (3, 10)]
    results = {}
    for model, n in cols:
        t0 = time.time()
        results[(model, n)] = case(model, n, args.repeats, args.svd_repeats)
        print(f"{model} x {n}: {results[(model, n)]} ({time.time() - t0:.0f}s)", flush=True)
    rows = [("FedAsync merge", "merge"), ("bare numpy axpy, same bytes", "axpy"),
            ("decode a reply (view of the message)", "decode"),
            ("encode weights for a message", "encode"),
            ("validation + norm bound", "validation"),
            ("**whole server step** (decode, validate, merge, publish, encode)", "step"),
            ("background: expert checkpoint (atomic, fsync)", "checkpoint"),
            ("background: `cat` gateway rebuild", "cat"),
            ("background: `cat` rebuild + checkpoint", "gateway"),
            ("`svd` gateway rebuild (from factors)", "svd")]
    head = "| per update | " + " | ".join(f"{m}, {n} experts" for m, n in cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(
            f"{1000 * results[c][key]:,.0f} ms" for c in cols) + " |")
    lines.append("| merge / axpy | " + " | ".join(
        f"{results[c]['merge'] / results[c]['axpy']:.1f}x" for c in cols) + " |")
    lines += ["", f"Median of {args.repeats} runs ({args.svd_repeats} for svd), one thread, "
                  "random weights of real LoRA shapes (r = 8, all linear layers).  Background "
                  "rows run on the server's checkpoint and gateway workers, off the step; the "
                  "gateway is rebuilt at most every `gateway.refresh-every` seconds (default "
                  "10)."]
    out = ROOT / "bench" / "results" / "server_cost.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
