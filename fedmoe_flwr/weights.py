"""Adapter weights as numpy arrays: the neutral type every layer shares.

``Weights`` maps PEFT's saved-adapter keys (adapter name removed, e.g.
``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight``) to float32
arrays: the keys of ``adapter_model.safetensors``, so an update from any node
loads into any specialty's adapter and is written to disk without renaming.
The merge math, the server and the node all speak this type; how it travels
is :mod:`fedmoe_flwr.wire` (packed records) and :mod:`fedmoe_flwr.codec`
(compression).  This module imports only numpy.
"""

from __future__ import annotations

import hashlib

import numpy as np

Weights = dict[str, np.ndarray]


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
    """True when no array holds NaN or Inf (checked after every merge).

    A sum is NaN or Inf when any value is, and costs one pass without the
    boolean temporary of ``isfinite``; only a non-finite sum (or an overflow
    of a large but finite array) pays for the exact check.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return all(np.isfinite(np.sum(v)) or np.isfinite(v).all() for v in weights.values())
