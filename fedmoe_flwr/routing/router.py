"""Routers: which expert(s) should answer a prompt.

Every router scores each specialty, turns the scores into routing weights,
and keeps the experts whose weight is at least ``router.threshold`` (at most
``router.top-k``, always at least the best one).  A prompt spanning two
domains ("write the SQL query and the Python function that runs it") is also
split into clauses (on "and", "then", ";", sentences); when its clauses
confidently go to different experts, all of them answer, in the order the
prompt asks for them.  Whole-prompt scores alone miss such prompts: one
domain's words dominate the average.

- ``keywords``: regex intent rules per specialty (the original FedMoE agent);
  score = number of matches, weights proportional to scores.
- ``centroid``: cosine similarity between the prompt's base-model embedding
  and each specialty's centroid (sent by the nodes at registration), both
  centred on the mean of the centroids so the part every prompt shares does
  not dominate; weights = softmax(score / temperature).
- ``loss``: mean per-token loss of the prompt under each expert; weights =
  softmax(-loss / temperature).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedmoe_flwr.config import ConfigError, RouterConfig
from fedmoe_flwr.routing.ngrams import NgramModel

DEFAULT_KEYWORDS = {
    "python_expert": r"\bpython\b|\bfunction\b|\bdef\b|\bclass\b|\bdataclass\b|\bpytest\b|"
                     r"\bgenerator\b|\bdecorator\b|\bdicts?\b|\blist\b|\biterable\b",
    "sql_expert": r"\bsql\b|\bpostgres(ql)?\b|\bsqlite\b|\bquery\b|\btables?\b|\bcolumns?\b|"
                  r"\brows?\b|\bjoin\b|\bselect\b|\bcte\b|\bindex\b",
    "docs_expert": r"\bdocument(ation)?\b|\bdocstring\b|\breadme\b|\bmigration note\b|"
                   r"\bchangelog\b|\breference\b|\bguide\b|\btutorial\b|\bexplain(ing)?\b",
}


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


def parse_keywords(spec: str, specialties: list[str]) -> dict[str, re.Pattern]:
    """``"specialty=regex;specialty=regex"`` (or the built-in rules) -> compiled patterns."""
    rules: dict[str, str] = {}
    if spec.strip():
        for i, part in enumerate(p for p in spec.split(";") if p.strip()):
            name, sep, pattern = part.partition("=")
            if not sep or not name.strip() or not pattern.strip():
                raise ConfigError(f"router.keywords rule {i + 1} {part!r} must look like "
                                  f"'specialty=regex'")
            rules[name.strip()] = pattern.strip()
    else:
        rules = {s: DEFAULT_KEYWORDS[s] for s in specialties if s in DEFAULT_KEYWORDS}
    unknown = sorted(set(rules) - set(specialties))
    if unknown:
        raise ConfigError(f"router.keywords names {unknown}, which this run has no expert for; "
                          f"experts: {specialties}")
    compiled = {}
    for name, pattern in rules.items():
        try:
            compiled[name] = re.compile(pattern, re.IGNORECASE)
        except re.error as err:
            raise ConfigError(f"router.keywords rule for {name!r} is not a valid regex: "
                              f"{err}") from None
    return compiled


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
    """Routes prompts for one run; the model is only needed by ``centroid`` and ``loss``.

    Parameters
    ----------
    cfg : RouterConfig
        Method, top-k, threshold, temperature, keyword rules.
    specialties : list of str
        The experts that exist.
    centroids : dict, optional
        Specialty -> centroid (``centroid`` router).
    embed : callable, optional
        ``list[str] -> (n, hidden)`` unit embeddings (``centroid`` router).
    prompt_losses : callable, optional
        ``str -> {specialty: loss}`` (``loss`` router).
    ngram_counts : dict, optional
        Specialty -> hashed character n-gram counts (``ngrams`` router).
    """

    def __init__(self, cfg: RouterConfig, specialties: list[str], *,
                 centroids: dict[str, np.ndarray] | None = None, embed: Any = None,
                 prompt_losses: Any = None,
                 ngram_counts: dict[str, np.ndarray] | None = None) -> None:
        self.cfg = cfg
        self.specialties = sorted(specialties)
        self.method = cfg.method
        if self.method == "keywords":
            self.rules = parse_keywords(cfg.keywords, self.specialties)
        elif self.method == "centroid":
            if not centroids or embed is None:
                raise ConfigError("the centroid router needs the run's centroids and an "
                                  "embedding function")
            missing = sorted(set(self.specialties) - set(centroids))
            if missing:
                raise ConfigError(f"no centroid for {missing} in router.json")
            names = self.specialties
            mat = np.stack([centroids[n] for n in names])
            self.mu = mat.mean(axis=0)
            centred = mat - self.mu
            self.centroids = centred / np.linalg.norm(centred, axis=1, keepdims=True)
            self.embed = embed
        elif self.method == "loss":
            if prompt_losses is None:
                raise ConfigError("the loss router needs a scoring function")
            self.prompt_losses = prompt_losses
        elif self.method == "ngrams":
            missing = sorted(set(self.specialties) - set(ngram_counts or {}))
            if missing:
                raise ConfigError(f"no n-gram counts for {missing} in router.json")
            self.ngram_model = NgramModel({n: ngram_counts[n] for n in self.specialties})

    def route_many(self, prompts: list[str]) -> list[Route]:
        """Route a batch, each prompt as a whole and by clauses."""
        wholes = self._route_whole(prompts)
        parts = [clauses(p) for p in prompts]
        flat = [c for cs in parts for c in cs if len(cs) > 1]
        by_clause = iter(self._route_whole(flat)) if flat else iter(())
        out = []
        for whole, cs in zip(wholes, parts, strict=True):
            if len(cs) < 2:
                out.append(whole)
                continue
            ordered: list[str] = []
            for route in (next(by_clause) for _ in cs):
                if route.experts and route.weights[route.experts[0]] >= CLAUSE_CONFIDENCE \
                        and route.experts[0] not in ordered:
                    ordered.append(route.experts[0])
            if len(ordered) < 2:
                out.append(whole)
                continue
            ordered = ordered[: self.cfg.top_k]
            best = whole.experts[0] if whole.experts else ordered[0]
            if best not in ordered:
                ordered = [best, *ordered[: self.cfg.top_k - 1]]
            raw = self._all_weights(whole)
            total = sum(raw[n] for n in ordered) or 1.0
            out.append(Route(ordered, {n: raw[n] / total for n in ordered}, whole.scores,
                             f"{self.method}+clauses"))
        return out

    def _all_weights(self, route: Route) -> dict[str, float]:
        if self.method == "keywords":
            total = sum(route.scores.values()) or 1.0
            return {n: s / total for n, s in route.scores.items()}
        return softmax(route.scores, self.cfg.temperature)

    def _route_whole(self, prompts: list[str]) -> list[Route]:
        """Route each prompt as a whole (the centroid router embeds the batch at once)."""
        if self.method == "centroid":
            emb = self.embed(prompts) - self.mu
            emb = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(min=1e-12)
            sims = emb @ self.centroids.T  # (n, experts)
            out = []
            for row in sims:
                scores = dict(zip(self.specialties, row.tolist(), strict=True))
                out.append(choose(softmax(scores, self.cfg.temperature), scores, self.cfg,
                                  self.method))
            return out
        return [self._route_one(p) for p in prompts]

    def route(self, prompt: str) -> Route:
        """Choose the expert(s) for one prompt."""
        return self.route_many([prompt])[0]

    def _route_one(self, prompt: str) -> Route:
        if self.method in ("loss", "ngrams"):
            if self.method == "loss":
                losses = self.prompt_losses(prompt)
                scores = {n: -losses[n] for n in self.specialties}
            else:  # mean log-probability per n-gram under each specialty
                scores = self.ngram_model.scores(prompt)
            return choose(softmax(scores, self.cfg.temperature), scores, self.cfg, self.method)
        scores = {n: float(len(self.rules[n].findall(prompt))) if n in self.rules else 0.0
                  for n in self.specialties}
        total = sum(scores.values())
        if total == 0:  # no rule matched: no expert; `ask` falls back to the gateway
            return Route([], {}, scores, self.method)
        return choose({n: s / total for n, s in scores.items()}, scores, self.cfg, self.method)
