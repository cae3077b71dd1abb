"""Held-out loss of any adapter on any domain, outside a federation.

Nodes score adapters on their own eval split during a run; benchmarks and the
CLI need the same numbers afterwards (every checkpointed version, any
exported adapter).  This loads the base model once, builds each domain's
eval split with the nodes' own code (same hash split, same tokenisation), and
scores weights through one scratch adapter slot, so the numbers are the ones
a node would report.
"""

from __future__ import annotations

from pathlib import Path

from fedmoe_flwr.config import AppConfig
from fedmoe_flwr.node.adapters import set_adapter_weights
from fedmoe_flwr.node.model import LoadedModel, ensure_adapter, load_base
from fedmoe_flwr.node.settings import NodeSettings, node_data, resolve_data_path
from fedmoe_flwr.node.training import evaluate_loss
from fedmoe_flwr.weights import Weights

SCRATCH = "_score"  # adapter slot the scored weights are loaded into


class DomainScorer:
    """Scores adapters on the eval splits of the domains of a run config.

    Parameters
    ----------
    cfg : AppConfig
        Model, data and ``sim.*`` settings: domain ``sim.specialties[i]`` reads
        ``sim.data-paths[i]``, exactly as simulated node ``i`` does.
    data_paths : dict, optional
        Domain -> JSONL file, overriding the ``sim.*`` mapping.
    """

    def __init__(self, cfg: AppConfig, data_paths: dict[str, str | Path] | None = None) -> None:
        self.cfg = cfg
        self.paths = {s: resolve_data_path(p) for s, p in zip(cfg.sim.specialties,
                                                              cfg.sim.data_paths, strict=True)}
        self.paths.update({s: resolve_data_path(str(p)) for s, p in (data_paths or {}).items()})
        self.loaded: LoadedModel = load_base(cfg.model)
        ensure_adapter(self.loaded, SCRATCH, cfg.model)
        self._rows: dict[str, list[dict]] = {}

    def eval_rows(self, domain: str) -> list[dict]:
        """The domain's tokenised held-out rows (cached)."""
        if domain not in self._rows:
            if domain not in self.paths:
                raise KeyError(f"no data file for domain {domain!r}; known: {sorted(self.paths)}")
            node = NodeSettings(domain, self.paths[domain])
            _, _, rows = node_data(node, self.cfg, self.loaded.tokenizer, self.loaded.fingerprint)
            self._rows[domain] = rows
        return self._rows[domain]

    def loss(self, weights: Weights, domain: str) -> float:
        """Mean per-token held-out loss of ``weights`` on ``domain``'s answers."""
        rows = self.eval_rows(domain)
        set_adapter_weights(self.loaded.peft_model, SCRATCH, weights)
        self.loaded.peft_model.set_adapter(SCRATCH)
        return evaluate_loss(self.loaded.peft_model, rows,
                             pad_id=self.loaded.tokenizer.pad_token_id, device=self.loaded.device)
