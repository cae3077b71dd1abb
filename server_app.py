"""Flower ServerApp: parse config -> build strategy -> run the federation loop.

Everything else (the loop, reply intake, merging, checkpoints) lives in
``fedmoe_flwr/server/`` and the policies in ``strategies/``; this process
never imports torch.
"""

from __future__ import annotations

import logging
import time

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

import strategies  # noqa: F401  (registers the built-in strategies)
from fedmoe_flwr.config import parse_run_config
from fedmoe_flwr.logs import setup_logging
from fedmoe_flwr.server.artifacts import RunDirectory
from fedmoe_flwr.server.loop import FederationLoop
from fedmoe_flwr.server.memory import keep_freed_memory
from fedmoe_flwr.server.policy import build_strategy
from fedmoe_flwr.server.resume import load_resume_state

app = ServerApp()
log = logging.getLogger("fedmoe")


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run one federation with the strategy named by ``strategy.name``."""
    setup_logging()
    keep_freed_memory()  # merges at memory speed (fedmoe_flwr/server/memory.py)
    cfg = parse_run_config(context.run_config)
    strategy = build_strategy(cfg)  # a bad name, key, value or setting fails before any write
    adapters = tuple(dict.fromkeys(strategy.adapter_for(s) for s in cfg.run.specialties))
    resume = (load_resume_state(cfg.run.resume_from, cfg.model, adapters,
                                cfg.run.allow_new_specialties)
              if cfg.run.resume_from else None)
    run_name = cfg.run.name or f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.strategy.name}"
    run_dir = RunDirectory(cfg.run.output_dir, run_name, cfg.model, cfg.run.keep_versions)
    log.info("run directory: %s", run_dir.root)
    run_dir.write_json("run_config.json", dict(context.run_config))  # what this run was
    try:
        FederationLoop(cfg=cfg, run_dir=run_dir, strategy=strategy, resume=resume).run(grid)
    finally:
        run_dir.close()
    log.info("results: %s (experts/, gateway/, summary.json, metrics.jsonl)", run_dir.root)
