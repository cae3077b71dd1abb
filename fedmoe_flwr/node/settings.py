"""Client-side node settings and per-process data cache.

A node learns its specialty and data file from its node config in a
deployment (``--node-config "specialty='sql_expert' data-path='...'"``) and
from the run config's ``sim.*`` lists in a simulation (by partition id).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedmoe_flwr import APP_DIR
from fedmoe_flwr.config import MODEL_SOURCES, AppConfig, ConfigError
from fedmoe_flwr.node.data import LocalData, load_local_data, tokenize
from fedmoe_flwr.node.redteam import ATTACKS

_DATA_CACHE: dict[tuple, tuple[LocalData, list[dict], list[dict]]] = {}


@dataclass(frozen=True)
class NodeSettings:
    """Who this node is: its specialty, its data, its simulated speed."""

    specialty: str
    data_path: Path
    speed_factor: float = 1.0
    model_source: str | None = None  # node config 'model-source': overrides model.source
    join_delay: float = 0.0  # simulation: seconds before the first registration reply
    partition: int | None = None  # simulation: the partition id (None: a deployed node)
    ranks: int = 1  # node config 'gpus': training ranks of one update (DDP when > 1)
    ddp_timeout: float = 300.0  # node config 'ddp-timeout': a hung rank fails the task after
    red_team: str = ""  # node config 'red-team': this node lies on purpose (node/redteam.py)


def resolve_data_path(path: str) -> Path:
    """Relative paths resolve against the working directory, then the app directory."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return APP_DIR / p


def _model_source(node_config: dict[str, Any]) -> str | None:
    source = node_config.get("model-source")
    if source in (None, ""):
        return None
    if source not in MODEL_SOURCES:
        raise ConfigError(f"node config 'model-source' must be one of {MODEL_SOURCES}, got "
                          f"{source!r}")
    return str(source)


def _ranks(node_config: dict[str, Any]) -> int:
    """Node config ``gpus``: a count, or ``all`` (every visible GPU; 1 on a CPU machine).

    On a machine without CUDA a count means CPU ranks (gloo), which is how the
    multi-rank path is tested and benchmarked without GPUs.
    """
    value = node_config.get("gpus", 1)
    if str(value).strip().lower() == "all":
        import torch

        return max(1, torch.cuda.device_count())
    try:
        ranks = int(str(value))
    except ValueError:
        raise ConfigError(f"node config 'gpus' must be a whole number or 'all', got "
                          f"{value!r}") from None
    if not 1 <= ranks <= 64:
        raise ConfigError(f"node config 'gpus' must be between 1 and 64, got {ranks}")
    return ranks


def _ddp_timeout(node_config: dict[str, Any]) -> float:
    value = node_config.get("ddp-timeout", 300.0)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"node config 'ddp-timeout' must be seconds, got {value!r}") from None
    if not 5.0 <= seconds <= 86400.0:
        raise ConfigError(f"node config 'ddp-timeout' must be 5 to 86400 seconds, got "
                          f"{seconds}")
    return seconds


def _red_team(node_config: dict[str, Any]) -> str:
    """Node config ``red-team``: an attack of :mod:`fedmoe_flwr.node.redteam`, or off.

    For red-team tests of the server's robust checks only, in a deployment or
    a simulation alike (the attack is applied to the trained weights either way).
    """
    value = node_config.get("red-team", "")
    if value in ("", None):
        return ""
    if value not in ATTACKS:
        raise ConfigError(f"node config 'red-team' must be one of {', '.join(ATTACKS)} (or "
                          f"empty: off), got {value!r}")
    return str(value)


def node_settings(node_config: dict[str, Any], cfg: AppConfig) -> NodeSettings:
    """Read the node's identity from its node config (deployment) or partition (simulation)."""
    if "specialty" in node_config:
        if "data-path" not in node_config:
            raise ConfigError("node config has 'specialty' but no 'data-path'; start the "
                              "SuperNode with --node-config \"specialty='...' "
                              "data-path='/path/to/file.jsonl'\"")
        try:
            speed = float(node_config.get("speed-factor", 1.0))
        except (TypeError, ValueError):
            raise ConfigError(f"node config 'speed-factor' must be a number, got "
                              f"{node_config.get('speed-factor')!r}") from None
        if speed < 1.0:
            raise ConfigError(f"node config 'speed-factor' must be >= 1, got {speed}")
        return NodeSettings(str(node_config["specialty"]),
                            resolve_data_path(str(node_config["data-path"])), speed,
                            _model_source(node_config), ranks=_ranks(node_config),
                            ddp_timeout=_ddp_timeout(node_config),
                            red_team=_red_team(node_config))
    if "partition-id" in node_config:
        if _ranks(node_config) > 1:
            raise ConfigError("node config 'gpus' > 1 (DDP) needs a deployed SuperNode: a "
                              "simulated node is one actor; run one simulated node per "
                              "device instead")
        pid = int(node_config["partition-id"])
        sim = cfg.sim
        i = pid % len(sim.specialties)
        speed = sim.speed_factors[pid] if pid < len(sim.speed_factors) else 1.0
        delay = sim.join_delays[pid] if pid < len(sim.join_delays) else 0.0
        return NodeSettings(sim.specialties[i], resolve_data_path(sim.data_paths[i]), speed,
                            join_delay=delay, partition=pid, red_team=_red_team(node_config))
    raise ConfigError("node config has neither 'specialty' + 'data-path' (deployment) nor "
                      "'partition-id' (simulation)")


def node_data(node: NodeSettings, cfg: AppConfig, tokenizer: Any,
              fingerprint: str) -> tuple[LocalData, list[dict], list[dict]]:
    """Validated, split and tokenised data, cached for the life of the process."""
    key = (str(node.data_path), cfg.data.eval_fraction, cfg.data.on_error,
           cfg.train.max_seq_len, cfg.data.max_eval_examples, fingerprint)
    if key not in _DATA_CACHE:
        data = load_local_data(node.data_path, cfg.data.eval_fraction, cfg.data.on_error)
        train_rows = list(tokenize(data.train, tokenizer, cfg.train.max_seq_len))
        eval_rows = list(tokenize(data.eval, tokenizer, cfg.train.max_seq_len))
        _DATA_CACHE[key] = (data, train_rows, eval_rows[: cfg.data.max_eval_examples])
    return _DATA_CACHE[key]
