"""The ``arrow`` router: token-level routing across the experts with PEFT's Arrow.

Arrow (Ostapenko et al. 2024, "Towards Modular LLMs by Building and Reusing a
Library of LoRAs") routes every token at every adapted layer: each expert's
prototype is the top right-singular vector of its ``B A`` in that layer, and a
token's hidden state picks the experts whose prototypes it aligns with
(``top_k``, softmax at a temperature), zero-shot, from the experts' weights
alone.  One forward pass mixes the experts per token, which is the mixture of
experts a per-prompt choice only approximates.

So there is no per-prompt decision to make here: the route names every expert
and the answering side (:class:`~fedmoe_flwr.tools.inference.Assistant`)
activates PEFT's Arrow adapter over them (``peft.tuners.lora.arrow``).
"""

from __future__ import annotations

from fedmoe_flwr.config import RouterConfig
from fedmoe_flwr.routing.router import RouterSources, Scorer


class ArrowScorer(Scorer):
    """Every expert, equally: the mixing happens per token inside the model."""

    name = "arrow"
    token_level = True

    def __init__(self, cfg: RouterConfig, specialties: list[str],
                 sources: RouterSources) -> None:
        super().__init__(cfg, specialties, sources)

    def scores(self, prompts: list[str]) -> list[dict[str, float]]:
        """Equal scores (a prompt-level view of a token-level router)."""
        return [dict.fromkeys(self.specialties, 0.0) for _ in prompts]
