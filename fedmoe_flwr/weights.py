"""Adapter weights as numpy arrays, and their form on the wire.

``Weights`` maps PEFT's saved-adapter keys (adapter name removed, e.g.
``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight``) to float32
arrays: the keys of ``adapter_model.safetensors``, so an update from any node
loads into any specialty's adapter and is written to disk without renaming.
Arrays are float32 on the wire because ``ArrayRecord`` cannot carry bfloat16.
This module imports neither torch nor PEFT: the server uses it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

Weights = dict[str, np.ndarray]


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


def weights_checksum(weights: Weights) -> str:
    """SHA-256 over keys, shapes and float32 bytes: what a checkpoint's reader verifies."""
    h = hashlib.sha256()
    for key in sorted(weights):
        arr = np.ascontiguousarray(weights[key], dtype=np.float32)
        h.update(f"{key}:{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def all_finite(weights: Weights) -> bool:
    """True when no array holds NaN or Inf (checked after every merge)."""
    return all(np.isfinite(v).all() for v in weights.values())
