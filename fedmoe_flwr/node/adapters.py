"""A named PEFT adapter's weights in and out of the model (node side, torch)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..weights import Weights


def get_adapter_weights(peft_model: Any, adapter: str) -> Weights:
    """The named adapter's LoRA matrices as float32 numpy arrays."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(peft_model, adapter_name=adapter)
    return {k: v.detach().to("cpu").float().numpy().copy() for k, v in state.items()}


def set_adapter_weights(peft_model: Any, adapter: str, weights: Weights) -> None:
    """Load weights into the named adapter, refusing missing or unexpected keys."""
    import torch
    from peft import set_peft_model_state_dict

    current = get_adapter_weights(peft_model, adapter)
    if set(current) != set(weights):
        missing = sorted(set(current) - set(weights))[:3]
        extra = sorted(set(weights) - set(current))[:3]
        raise ValueError(f"adapter '{adapter}': keys differ (missing e.g. {missing}, "
                         f"unexpected e.g. {extra})")
    state = {k: torch.tensor(np.asarray(v, dtype=np.float32)) for k, v in weights.items()}
    result = set_peft_model_state_dict(peft_model, state, adapter_name=adapter)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"adapter '{adapter}': PEFT did not use keys {unexpected[:3]}")
