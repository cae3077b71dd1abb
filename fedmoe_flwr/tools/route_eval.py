"""Routing accuracy on labelled prompts: per specialty, overall, and a confusion matrix.

Inputs are JSONL files whose lines carry ``{"prompt": ..., "specialty": ...}``,
or the run's own data files (their specialty is known from ``sim.data-paths``;
only their held-out split is used, so the centroids never saw those prompts).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fedmoe_flwr.config import AppConfig, ConfigError
from fedmoe_flwr.node.data import load_local_data
from fedmoe_flwr.node.settings import resolve_data_path
from fedmoe_flwr.routing.router import Router
from fedmoe_flwr.tools.limits import check_text_at

NONE = "(none)"  # a router that chose no expert (keywords without a match)


@dataclass
class RouteReport:
    """Top-1 routing results of one router."""

    method: str
    total: Counter = field(default_factory=Counter)  # true specialty -> examples
    correct: Counter = field(default_factory=Counter)
    confusion: Counter = field(default_factory=Counter)  # (true, predicted) -> count
    multi: int = 0  # prompts routed to more than one expert

    @property
    def accuracy(self) -> float:
        """Share of prompts whose top-1 expert is their specialty."""
        n = sum(self.total.values())
        return sum(self.correct.values()) / n if n else float("nan")

    def per_specialty(self) -> dict[str, float]:
        """Accuracy per true specialty."""
        return {s: self.correct[s] / n for s, n in sorted(self.total.items())}


def load_labelled(paths: list[Path], cfg: AppConfig,
                  experts: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(prompt, specialty) pairs from labelled files or the run's data files.

    Every prompt passes the text check ``ask`` and ``serve`` apply, and every
    label must be one of ``experts`` (the run's): a label no router can choose
    would be scored 0% without a word.  A file without prompts is an error, so
    an accuracy is never computed over nothing.
    """
    by_file = {resolve_data_path(p).resolve(): s
               for s, p in zip(cfg.sim.specialties, cfg.sim.data_paths, strict=True)}
    examples: list[tuple[str, str]] = []
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{path} does not exist" if not path.exists() else
                              f"{path} is not a file")
        rows = _labelled_rows(path, experts)
        if rows is None:
            specialty = by_file.get(path.resolve())
            if specialty is None:
                raise ConfigError(f"cannot tell which specialty {path} holds: it is not one of "
                                  f"the run's sim.data-paths; give each line a 'specialty' "
                                  f"field")
            data = load_local_data(path, cfg.data.eval_fraction, cfg.data.on_error)
            rows = [(check_text_at(p, f"{path}: held-out prompt {i}"), specialty)
                    for i, p in enumerate(data.eval["prompt"], 1)]
        if not rows:
            raise ConfigError(f"{path}: no prompts (the file is empty)")
        examples += rows
    return examples


def _labelled_rows(path: Path, experts: Sequence[str] | None = None
                   ) -> list[tuple[str, str]] | None:
    """``(prompt, specialty)`` of a labelled file; None when its lines carry no specialty.

    Every line is checked as the nodes check theirs: invalid UTF-8, invalid
    JSON, a missing field, a prompt that is not text (blank, a lone surrogate,
    over the length limit) or a specialty not in ``experts`` is an error
    naming ``file:line``.
    """
    rows: list[tuple[str, str]] = []
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror})") from None
    for lineno, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}:{lineno}: not valid UTF-8 ({err.reason} at byte "
                              f"{err.start})") from None
        except ValueError as err:
            raise ConfigError(f"{path}:{lineno}: not JSON ({str(err)[:80]})") from None
        except RecursionError:
            raise ConfigError(f"{path}:{lineno}: not JSON (nested too deeply)") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{lineno}: expected a JSON object")
        if not rows and "specialty" not in row:
            return None  # a training file: its specialty comes from the run's data paths
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("specialty"), str):
            raise ConfigError(f"{path}:{lineno}: need string fields 'prompt' and 'specialty'")
        if experts is not None and row["specialty"] not in experts:
            raise ConfigError(f"{path}:{lineno}: specialty {row['specialty']!r} is not an "
                              f"expert of this run; its experts: {', '.join(sorted(experts))}")
        rows.append((check_text_at(row["prompt"], f"{path}:{lineno}"), row["specialty"]))
    return rows


def evaluate_router(router: Router, examples: list[tuple[str, str]]) -> RouteReport:
    """Route every prompt and count top-1 hits."""
    report = RouteReport(router.method)
    routes = router.route_many([p for p, _ in examples])
    for (_, truth), route in zip(examples, routes, strict=True):
        pred = route.best or NONE
        report.total[truth] += 1
        report.correct[truth] += pred == truth
        report.confusion[truth, pred] += 1
        report.multi += len(route.experts) > 1
    return report
