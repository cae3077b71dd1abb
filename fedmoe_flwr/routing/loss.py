"""The ``loss`` router: the expert that finds the prompt least surprising.

Experts trained with ``train.prompt-loss-weight > 0`` model their domain's
prompts, so p(domain | x) is proportional to p(x | domain): the lowest mean
per-token loss of the prompt names the domain (score = minus the loss).  The
losses come from the caller (``sources.prompt_losses``), which holds the model.
"""

from __future__ import annotations

from fedmoe_flwr.config import RouterConfig
from fedmoe_flwr.routing.router import RouterSources, Scorer


class LossScorer(Scorer):
    """Minus each expert's mean loss on the prompt's own tokens."""

    name = "loss"

    def __init__(self, cfg: RouterConfig, specialties: list[str],
                 sources: RouterSources) -> None:
        super().__init__(cfg, specialties, sources)
        self.prompt_losses = sources.need("prompt_losses", self.name)

    def scores(self, prompts: list[str]) -> list[dict[str, float]]:
        """One forward pass per expert and prompt (the caller's model)."""
        out = []
        for prompt in prompts:
            losses = self.prompt_losses(prompt)
            out.append({n: -losses[n] for n in self.specialties})
        return out
