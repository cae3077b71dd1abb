"""``run.resume-from``: continue a stopped run from its last checkpoints.

Experts come back with their weights, versions and counters, the gateway
with its version, and the centroids the nodes sent; the new run writes a new
run directory, so the old one stays as it was.  Versions only go up: a node
that trained on version ``v`` of the old run sends an update the new run
sees as stale by ``V - v``.  Only the last complete checkpoint of each
adapter is read (the symlink the writer swaps atomically), so a crash in the
middle of a checkpoint of the old run resumes from the previous one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedmoe_flwr.config import ConfigError, ModelConfig
from fedmoe_flwr.contract import LoraSignature
from fedmoe_flwr.lora import lora_signature
from fedmoe_flwr.routing.centroids import ROUTER_FILE
from fedmoe_flwr.server.experts import ExpertState
from fedmoe_flwr.server.guard_state import load_guard
from fedmoe_flwr.server.rundir import RunDirError, RunView


@dataclass
class ResumeState:
    """What a new run inherits from an old one."""

    source: Path
    experts: dict[str, ExpertState]
    gateway_version: int
    updates: int
    router: dict[str, Any] | None
    guard: tuple[dict, Any] | None = None  # the robust guard's memory (guard_state)


def load_resume_state(path: str, model_cfg: ModelConfig, specialties: tuple[str, ...],
                      allow_new: bool = False) -> ResumeState:
    """Read the old run's checkpoints; refuse ones the new run could not continue.

    ``allow_new`` (``run.allow-new-specialties``): experts of specialties not in
    ``specialties`` (created mid-run by the old run) come back too.
    """
    try:
        run = RunView(path)
    except RunDirError as err:
        raise ConfigError(f"run config key 'run.resume-from': {err}") from None
    want = lora_signature(model_cfg)
    experts: dict[str, ExpertState] = {}
    for info in run.experts():
        got = LoraSignature(info.config["r"], info.config["lora_alpha"],
                            json.dumps(sorted(info.config["target_modules"])),
                            str(info.meta.get("lora_variant", "standard")))
        if got != want:
            raise ConfigError(f"run config key 'run.resume-from': {info.path} has LoRA "
                              f"{got}, this run's model.* settings give {want}")
        if info.name not in specialties and not allow_new:
            continue  # a specialty this run does not train any more
        m = info.meta
        experts[info.name] = ExpertState(
            info.name, info.weights(), version=int(m.get("version", 0)),
            updates=int(m.get("updates", 0)), examples_seen=int(m.get("examples_seen", 0)),
            nodes=set(), last_train_loss=m.get("last_train_loss"),
            eval_losses=dict(m.get("eval_losses", {})))
    gateway_version = run.adapter("gateway").version if "gateway" in run.names() else -1
    router_path = run.root / ROUTER_FILE
    summary = run.summary() or {}  # a run killed before its end has none: count versions
    updates = int(summary.get("updates", sum(e.updates for e in experts.values())))
    try:
        guard = load_guard(run.root)
    except RunDirError as err:
        raise ConfigError(f"run config key 'run.resume-from': {err}") from None
    return ResumeState(run.root, experts, gateway_version, updates,
                       json.loads(router_path.read_text()) if router_path.exists() else None,
                       guard)
