"""Routers: which expert(s) should answer a prompt, behind one interface and a registry.

A routing method is a :class:`Scorer`: it scores every specialty for each
prompt.  :class:`Router` turns the scores into routing weights (a softmax at
``router.temperature``, or shares of the scores) and keeps the experts whose
weight is at least ``router.threshold`` (at most ``router.top-k``, always at
least the best one).  A prompt spanning two domains ("write the SQL query and
the Python function that runs it") is also split into clauses (on "and",
"then", ";", sentences); when its clauses confidently go to different
experts, all of them answer, in the order the prompt asks for them.
Whole-prompt scores alone miss such prompts: one domain's words dominate.

Methods live one per file (``ngrams``, ``centroids``, ``loss``, ``keywords``)
and are registered in ``fedmoe_flwr/routing/__init__.py``: adding a router is
one file with a :class:`Scorer` and one :func:`register_router` line.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from fedmoe_flwr.config import ConfigError, RouterConfig

CLAUSE_SPLIT = re.compile(r"\s*(?:;|,?\s+and\s+(?:then\s+)?|,?\s+then\s+|[.?!]\s+)\s*",
                          re.IGNORECASE)
CLAUSE_MIN_WORDS = 3
CLAUSE_CONFIDENCE = 0.75  # a clause's top weight must reach this to add its expert


def clauses(prompt: str) -> list[str]:
    """The prompt's clauses of at least ``CLAUSE_MIN_WORDS`` words."""
    return [c for c in CLAUSE_SPLIT.split(prompt.strip())
            if len(c.split()) >= CLAUSE_MIN_WORDS]


@dataclass(frozen=True)
class Route:
    """A routing decision: chosen experts (best first) with weights, and every score."""

    experts: list[str]  # best first, or in the prompt's order for multi-clause prompts
    weights: dict[str, float]  # chosen experts, normalised to sum to 1
    scores: dict[str, float]  # every specialty's raw score
    method: str

    @property
    def best(self) -> str | None:
        """The highest-weight expert (what top-1 routing accuracy counts)."""
        return max(self.weights, key=lambda n: self.weights[n]) if self.weights else None


@dataclass(frozen=True)
class RouterSources:
    """What a routing method may use, each fetched only by the methods that need it.

    ``centroids`` and ``ngram_counts`` return the run's per-specialty statistics
    (``router.json``); ``embed`` maps prompts to base-model unit embeddings;
    ``prompt_losses`` maps a prompt to each expert's loss on it.
    """

    centroids: Callable[[], dict[str, np.ndarray]] | None = None
    ngram_counts: Callable[[], dict[str, np.ndarray]] | None = None
    embed: Callable[[list[str]], np.ndarray] | None = None
    prompt_losses: Callable[[str], dict[str, float]] | None = None

    def need(self, name: str, method: str) -> Any:
        """The source ``name``, or a clear error saying which router needed it."""
        value = getattr(self, name)
        if value is None:
            raise ConfigError(f"the {method} router needs {name.replace('_', ' ')}, which "
                              f"this caller does not provide")
        return value


class Scorer(ABC):
    """One routing method: a score per specialty for each prompt (higher is better).

    ``weighting`` is how scores become routing weights: ``softmax`` (at the
    router's temperature) or ``share`` (proportional; all-zero scores route to
    no expert, and the caller falls back to the gateway).
    """

    name: ClassVar[str] = ""
    weighting: ClassVar[str] = "softmax"

    def __init__(self, cfg: RouterConfig, specialties: list[str],
                 sources: RouterSources) -> None:
        self.cfg = cfg
        self.specialties = specialties

    @abstractmethod
    def scores(self, prompts: list[str]) -> list[dict[str, float]]:
        """Every specialty's score for each prompt."""


_SCORERS: dict[str, type[Scorer]] = {}


def register_router(cls: type[Scorer]) -> type[Scorer]:
    """Make a routing method selectable by ``router.method`` (and ``--router``)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must set a router name")
    _SCORERS[cls.name] = cls
    return cls


def router_names() -> tuple[str, ...]:
    """The registered routing methods."""
    return tuple(_SCORERS)


def parse_keywords(spec: str, specialties: list[str]) -> dict[str, re.Pattern]:
    """``"specialty=regex;specialty=regex"`` (or the built-in rules) -> compiled patterns."""
    from fedmoe_flwr.routing.keywords import compile_rules

    return compile_rules(spec, specialties)


def softmax(scores: dict[str, float], temperature: float) -> dict[str, float]:
    """Routing weights from scores (higher score = more weight)."""
    names = list(scores)
    x = np.array([scores[n] for n in names], dtype=np.float64) / temperature
    e = np.exp(x - x.max())
    return dict(zip(names, (e / e.sum()).tolist(), strict=True))


def choose(weights: dict[str, float], scores: dict[str, float], cfg: RouterConfig,
           method: str) -> Route:
    """Apply top-k and the threshold; renormalise the chosen experts' weights."""
    ranked = sorted(weights, key=lambda n: (-weights[n], n))
    chosen = [n for n in ranked[: cfg.top_k] if weights[n] >= cfg.threshold] or ranked[:1]
    total = sum(weights[n] for n in chosen) or 1.0
    return Route(chosen, {n: weights[n] / total for n in chosen}, scores, method)


class Router:
    """Routes prompts for one run with the method ``cfg.method`` names.

    Parameters
    ----------
    cfg : RouterConfig
        Method, top-k, threshold, temperature, keyword rules.
    specialties : list of str
        The experts that exist.
    sources : RouterSources, optional
        The statistics and model functions the method may need.
    """

    def __init__(self, cfg: RouterConfig, specialties: list[str],
                 sources: RouterSources | None = None) -> None:
        if cfg.method not in _SCORERS:
            raise ConfigError(f"router.method must be one of {sorted(_SCORERS)}, got "
                              f"{cfg.method!r}")
        self.cfg = cfg
        self.specialties = sorted(specialties)
        self.method = cfg.method
        self.scorer = _SCORERS[cfg.method](cfg, self.specialties, sources or RouterSources())

    def weights(self, scores: dict[str, float]) -> dict[str, float] | None:
        """Routing weights of every specialty (None: nothing matched, no expert)."""
        if self.scorer.weighting == "share":
            total = sum(scores.values())
            return {n: s / total for n, s in scores.items()} if total else None
        return softmax(scores, self.cfg.temperature)

    def _route_whole(self, prompts: list[str]) -> list[Route]:
        """Route each prompt as a whole (a method may score the batch at once)."""
        out = []
        for scores in self.scorer.scores(prompts) if prompts else []:
            w = self.weights(scores)
            out.append(Route([], {}, scores, self.method) if w is None
                       else choose(w, scores, self.cfg, self.method))
        return out

    def route_many(self, prompts: list[str]) -> list[Route]:
        """Route a batch, each prompt as a whole and by clauses."""
        if getattr(self.scorer, "token_level", False):  # the model mixes per token
            share = {n: 1.0 / len(self.specialties) for n in self.specialties}
            return [Route(list(self.specialties), dict(share), {}, self.method)
                    for _ in prompts]
        wholes = self._route_whole(prompts)
        parts = [clauses(p) for p in prompts]
        flat = [c for cs in parts for c in cs if len(cs) > 1]
        by_clause = iter(self._route_whole(flat))
        return [whole if len(cs) < 2 else self._by_clauses(whole, [next(by_clause) for _ in cs])
                for whole, cs in zip(wholes, parts, strict=True)]

    def _by_clauses(self, whole: Route, routes: list[Route]) -> Route:
        ordered: list[str] = []
        for route in routes:
            if route.experts and route.weights[route.experts[0]] >= CLAUSE_CONFIDENCE \
                    and route.experts[0] not in ordered:
                ordered.append(route.experts[0])
        if len(ordered) < 2:
            return whole
        ordered = ordered[: self.cfg.top_k]
        best = whole.experts[0] if whole.experts else ordered[0]
        if best not in ordered:
            ordered = [best, *ordered[: self.cfg.top_k - 1]]
        raw = self.weights(whole.scores) or {}
        total = sum(raw.get(n, 0.0) for n in ordered) or 1.0
        return Route(ordered, {n: raw.get(n, 0.0) / total for n in ordered}, whole.scores,
                     f"{self.method}+clauses")

    def route(self, prompt: str) -> Route:
        """Choose the expert(s) for one prompt."""
        return self.route_many([prompt])[0]
