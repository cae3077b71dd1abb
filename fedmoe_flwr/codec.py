"""Adapter weights between PEFT, numpy and Flower's ``ArrayRecord``.

Weights travel under PEFT's own saved-adapter keys (adapter name removed, e.g.
``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight``), which are
the keys of ``adapter_model.safetensors``.  So an update from any node can be
loaded into any specialty's adapter and written to disk without renaming.
Arrays are float32 on the wire: ``ArrayRecord`` cannot carry bfloat16.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Weights = dict[str, np.ndarray]


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
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
    result = set_peft_model_state_dict(peft_model, state, adapter_name=adapter)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"adapter '{adapter}': PEFT did not use keys {unexpected[:3]}")


def to_array_record(weights: Weights) -> Any:
    """Pack weights for a message (float32, sorted keys for reproducible bytes)."""
    from flwr.app import Array, ArrayRecord

    return ArrayRecord({k: Array(np.asarray(weights[k], dtype=np.float32))
                        for k in sorted(weights)})


def from_array_record(record: Any) -> Weights:
    """Unpack a message's ArrayRecord into numpy arrays (no validation here)."""
    return {k: arr.numpy() for k, arr in record.items()}


def weights_nbytes(weights: Weights) -> int:
    """Payload size, for the bytes-sent/received accounting."""
    return int(sum(v.nbytes for v in weights.values()))
