"""The ``keywords`` router: regex intent rules per specialty (the original FedMoE agent).

A prompt's score for a specialty is the number of matches of its rules; the
weights are the shares of those counts.  A prompt no rule matches routes to no
expert, and the caller answers with the gateway.
"""

from __future__ import annotations

import re

from fedmoe_flwr.config import ConfigError, RouterConfig
from fedmoe_flwr.routing.router import RouterSources, Scorer

DEFAULT_KEYWORDS = {
    "python_expert": r"\bpython\b|\bfunction\b|\bdef\b|\bclass\b|\bdataclass\b|\bpytest\b|"
                     r"\bgenerator\b|\bdecorator\b|\bdicts?\b|\blist\b|\biterable\b",
    "sql_expert": r"\bsql\b|\bpostgres(ql)?\b|\bsqlite\b|\bquery\b|\btables?\b|\bcolumns?\b|"
                  r"\brows?\b|\bjoin\b|\bselect\b|\bcte\b|\bindex\b",
    "docs_expert": r"\bdocument(ation)?\b|\bdocstring\b|\breadme\b|\bmigration note\b|"
                   r"\bchangelog\b|\breference\b|\bguide\b|\btutorial\b|\bexplain(ing)?\b",
}


def compile_rules(spec: str, specialties: list[str]) -> dict[str, re.Pattern]:
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


class KeywordScorer(Scorer):
    """Counts each specialty's rule matches."""

    name = "keywords"
    weighting = "share"

    def __init__(self, cfg: RouterConfig, specialties: list[str],
                 sources: RouterSources) -> None:
        super().__init__(cfg, specialties, sources)
        self.rules = compile_rules(cfg.keywords, specialties)

    def scores(self, prompts: list[str]) -> list[dict[str, float]]:
        """Matches per specialty (0 for a specialty without rules)."""
        return [{n: float(len(self.rules[n].findall(p))) if n in self.rules else 0.0
                 for n in self.specialties} for p in prompts]
