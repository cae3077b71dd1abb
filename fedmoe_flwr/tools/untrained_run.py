"""A run directory written by the project's own code without a federation.

Serving, exporting and routing only read a run directory.  Measuring them
(``bench/serving.py``) or testing them should not wait for training, yet the
directory must be exactly what a ServerApp writes: the same adapter files,
version records, gateway merge and router counts.  So this builds one with
the same functions the server uses, from weights that are known instead of
learned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fedmoe_flwr import APP_DIR

EXPERTS = {"python_expert": "python", "sql_expert": "sql", "docs_expert": "docs"}


def untrained_run(out: Path, model: str = "qwen2-tiny", scale: float = 0.5,
                  **config: Any) -> Path:
    """Write ``out/run``: one expert per domain of ``data/``, the gateway and ``router.json``.

    Each expert is the base model's freshly initialised LoRA with ``B`` drawn
    from a seeded normal of standard deviation ``scale`` (0: every expert is
    the base model itself, the honest choice for timing a real model); the
    gateway is their ``cat`` merge with equal weights; the router holds the
    n-gram counts of each domain's first 300 training prompts, as nodes send
    them.  ``config`` is flat run config (``"model.quantization": 0`` ...).
    Returns the run directory.
    """
    from fedmoe_flwr.config import parse_run_config
    from fedmoe_flwr.merge.gateway import build_gateway
    from fedmoe_flwr.node.adapters import get_adapter_weights
    from fedmoe_flwr.node.model import ensure_adapter, load_base
    from fedmoe_flwr.routing.centroids import CentroidBook
    from fedmoe_flwr.routing.ngrams import ngram_counts
    from fedmoe_flwr.server.artifacts import RunDirectory

    flat = {"model.name": model, **config}
    cfg = parse_run_config(flat)
    # An adapter of its own (seeded by its name), not the model's "_init" placeholder: the
    # model is cached per process, and building PEFT's Arrow on it deletes the placeholder.
    loaded = load_base(cfg.model)
    ensure_adapter(loaded, "_untrained", cfg.model)
    init = get_adapter_weights(loaded.peft_model, "_untrained")
    run_dir = RunDirectory(out, "run", cfg.model)
    book, experts = CentroidBook(0), {}
    for i, (name, domain) in enumerate(EXPERTS.items()):
        rng = np.random.default_rng(i + 1)
        experts[name] = {k: v if ".lora_A." in k else
                         (scale * rng.standard_normal(v.shape)).astype(np.float32)
                         for k, v in init.items()}
        run_dir.save_adapter(f"experts/{name}", experts[name], 1,
                             {"version": 1, "examples_seen": 10})
        lines = (APP_DIR / "data" / f"{domain}.jsonl").read_text().splitlines()[:300]
        book.add_ngrams(i, name, ngram_counts([json.loads(x)["prompt"] for x in lines],
                                              cfg.router.ngram_buckets))
    gw = build_gateway(experts, dict.fromkeys(experts, 1 / len(experts)), "cat",
                       rank=cfg.model.lora_r, alpha=cfg.model.lora_alpha)
    run_dir.save_adapter("gateway", gw.weights, 1, {"version": 1, "method": "cat"},
                         rank=gw.rank, alpha=gw.alpha)
    run_dir.write_json("router.json", book.to_json())
    run_dir.write_json("run_config.json", flat)
    run_dir.close()
    return run_dir.root
