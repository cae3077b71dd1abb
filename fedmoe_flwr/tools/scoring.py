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
from typing import Any

from fedmoe_flwr.config import AppConfig
from fedmoe_flwr.node.adapters import set_adapter_weights
from fedmoe_flwr.node.model import LoadedModel, ensure_adapter, load_base
from fedmoe_flwr.node.settings import NodeSettings, node_data, resolve_data_path
from fedmoe_flwr.node.training import evaluate_loss
from fedmoe_flwr.tools.limits import check_text_at
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


def score_files(run: Any, cfg: AppConfig, files: list[Path]) -> dict[str, dict[str, float]]:
    """Loss on every example of each JSONL file: base model, every expert, the gateway.

    What ``fedmoe score`` prints (for example on the natural prompts of
    ``data/eval/``).  Every line counts (no held-out split: these files are not
    training data); answer tokens only, with the nodes' tokenisation, exactly as
    a node's evaluation.
    """
    from datasets import Dataset

    from fedmoe_flwr.node.data import tokenize

    every = {path: read_scored(path) for path in files}  # a bad file fails before the model
    from fedmoe_flwr.tools.inference import load_run_base

    loaded = load_run_base(run, cfg)  # a model that cannot load: one line naming the file
    model, tok = loaded.peft_model, loaded.tokenizer
    adapters = [*run.experts(), *([run.adapter("gateway")] if "gateway" in run.names() else [])]
    out: dict[str, dict[str, float]] = {}
    for path, rows in every.items():
        data = list(tokenize(Dataset.from_list(rows), tok, cfg.train.max_seq_len))
        with model.disable_adapter():
            row = {"base": evaluate_loss(model, data, pad_id=tok.pad_token_id,
                                         device=loaded.device)}
        for info in adapters:
            rank, alpha = int(info.config["r"]), int(info.config["lora_alpha"])
            slot = f"{SCRATCH}_r{rank}_a{alpha}"
            ensure_adapter(loaded, slot, cfg.model, rank, alpha)
            set_adapter_weights(model, slot, info.weights())  # checksum and NaN checked
            model.set_adapter(slot)
            row[info.name] = evaluate_loss(model, data, pad_id=tok.pad_token_id,
                                           device=loaded.device)
        out[str(path)] = row
    return out


def read_scored(path: Path) -> list[dict[str, str]]:
    """A file's rows, each line checked as a node's and its prompt as ``ask`` checks one.

    The form of every line (UTF-8, JSON, both fields) is the nodes' rule
    (``DataError`` naming ``file:line``); the prompt's text is the rule shared
    with ``ask``, ``route-eval``, ``evaluate`` and ``serve``.
    """
    from fedmoe_flwr.node.data import read_jsonl

    rows, _ = read_jsonl(path)  # on_error="fail": one row per non-blank line, in order
    with Path(path).open("rb") as fh:
        lines = [n for n, raw in enumerate(fh, 1) if raw.strip()]
    for lineno, row in zip(lines, rows, strict=True):
        check_text_at(row["prompt"], f"{path}:{lineno}")
    return rows
