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

from typing import Any

from fedmoe_flwr.config import RouterConfig
from fedmoe_flwr.routing.router import RouterSources, Scorer

ARROW_SLOT = "arrow_router"  # the name PEFT's Arrow leaves out of its experts


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


def attach_arrow(model: Any, experts: list[str], target_modules: list[str], rank: int,
                 seed: int) -> None:
    """Make PEFT's Arrow adapter over the expert adapters ``x:<name>`` the active one.

    PEFT's Arrow routes over every LoRA adapter the model holds, so before it is
    built every other adapter (a mix, the gateway, the placeholder) is deleted;
    :func:`detach_arrow` must run before any other adapter is added again.
    """
    from peft import LoraConfig
    from peft.tuners.lora.config import ArrowConfig

    if ARROW_SLOT not in model.peft_config:
        keep = {f"x:{n}" for n in experts}
        for name in [n for n in model.peft_config if n not in keep]:
            _delete(model, name)
        arrow = ArrowConfig(top_k=min(3, len(experts)), router_temperature=1.0,
                            rng_seed=seed)
        arrow.task_adapter_names = [f"x:{n}" for n in experts]
        arrow.gks_adapter_names = []
        model.add_adapter(ARROW_SLOT, LoraConfig(arrow_config=arrow,
                                                 target_modules=target_modules, r=rank))
    model.set_adapter(ARROW_SLOT)


def detach_arrow(model: Any) -> None:
    """Delete the Arrow adapter (rebuilt when next used): another adapter is coming."""
    if ARROW_SLOT in model.peft_config:
        _delete(model, ARROW_SLOT)


def _delete(model: Any, name: str) -> None:
    """Delete adapter ``name``, first making another one active if it is the active one.

    PEFT would switch itself and warn; the switch is expected here, the warning noise.
    """
    others = [n for n in model.peft_config if n != name]
    if others and model.active_adapter == name:
        model.set_adapter(others[0])
    model.delete_adapter(name)
