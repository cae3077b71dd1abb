"""Compressed updates on the wire: float16, or int8 with per-channel scales.

``comm.compression`` chooses what travels (the server and the nodes encode and
decode through this module only):

- ``none``: float32 weights both ways (:func:`weights.to_array_record`).
- ``fp16``: the server sends float16 weights; the node sends its *delta* from
  the weights it received, in float16.  Half the bytes.
- ``int8``: the server sends float16 weights; the node sends its delta as int8
  with one float32 scale per channel (``max |x| / 127`` over each slice along
  the matrix's longer side: a LoRA ``A`` (r, in) gets r scales, a ``B`` (out, r)
  gets r too), about a quarter of the bytes.

A delta is small next to the weights, so it keeps more of its precision
when rounded.  The node carries each update's rounding error into its next one
(error feedback, as in EF-SGD, Karimireddy et al. 2019), so what the server
adds up over updates is the node's true total change.  Records stay standard
``.npy`` arrays with the packed index of :mod:`weights`; an int8 record adds
``packed-scales``.  Every decoded value is checked by the server like any
update (shapes, finiteness, norm bound) before it touches an expert.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import numpy as np

from .weights import Weights
from .wire import (
    INDEX,
    PACKED,
    _npy_array,
    _npy_header,
    _vector,
    from_array_record,
    index_entries,
    read_index,
)
from .wire import to_array_record as _float32_record

COMPRESSIONS = ("none", "fp16", "int8")
SCALES = "packed-scales"
_WIRE = {"fp16": ("<f2", "float16", np.float16), "int8": ("|i1", "int8", np.int8)}


def encode(weights: Weights, compression: str) -> Any:
    """``weights`` (or a delta) as an ArrayRecord in the given compression."""
    if compression == "none":
        return _float32_record(weights)
    if compression not in _WIRE:
        raise ValueError(f"unknown compression {compression!r}; valid: {COMPRESSIONS}")
    descr, dtype_name, dtype = _WIRE[compression]
    keys = sorted(weights)
    arrays = [np.asarray(weights[k], dtype=np.float32) for k in keys]
    records: dict[str, Any] = {}
    if compression == "int8":
        pairs = [_quantize(a) for a in arrays]
        parts = [q for q, _ in pairs]
        scales = np.concatenate([s for _, s in pairs]) if pairs else np.zeros(0, np.float32)
        records[SCALES] = _npy_array(_npy_header(scales.size) + scales.tobytes(), scales.size)
    else:
        parts = [a.astype(np.float16) for a in arrays]
    size = sum(p.size for p in parts)
    data = b"".join([_npy_header(size, descr), *(memoryview(np.ascontiguousarray(p)).cast("B")
                                                  for p in parts)])
    # The index is compressed too (its keys repeat): with it, an fp16 record is at most half
    # an fp32 one even for small adapters, where the index is a visible share of the bytes.
    index = zlib.compress(json.dumps([[k, list(np.shape(weights[k]))] for k in keys]).encode(),
                          9)
    records[PACKED] = _npy_array(data, size, dtype_name)
    records[INDEX] = _npy_array(_npy_header(len(index), "|u1") + index, len(index), "uint8")
    from flwr.app import ArrayRecord

    return ArrayRecord(records)


def decode(record: Any) -> Weights:
    """Float32 arrays from a record of any compression (a malformed one raises ValueError).

    Arrays of other dtypes that a peer sent unpacked are returned as they are,
    so that the server's validation refuses them by name.
    """
    if SCALES not in record:
        out = from_array_record(record)  # float32 (views), float16, or whatever a peer sent
        # float16 becomes float32; any other dtype is left for validation to judge
        return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in out.items()}
    if set(record) != {PACKED, INDEX, SCALES}:
        raise ValueError(f"an int8 record holds exactly {PACKED!r}, {INDEX!r} and {SCALES!r}, "
                         f"got {sorted(record)}")
    codes = _vector(record[PACKED])
    scales = _vector(record[SCALES])
    if codes.dtype != np.int8 or scales.dtype != np.float32:
        raise ValueError(f"int8 record with {codes.dtype} codes and {scales.dtype} scales")
    index = read_index(record[INDEX])
    out: Weights = {}
    offset = s_offset = 0
    for key, shape in index_entries(index):
        size, n_scales = math.prod(shape), _channels(shape)
        if offset + size > codes.size or s_offset + n_scales > scales.size:
            raise ValueError("int8 record index needs more values than were sent")
        q = codes[offset:offset + size].reshape(shape)
        s = scales[s_offset:s_offset + n_scales]
        out[key] = q.astype(np.float32) * _broadcastable(s, shape)
        offset, s_offset = offset + size, s_offset + n_scales
    if offset != codes.size or s_offset != scales.size:
        raise ValueError(f"int8 record index covers {offset} of {codes.size} values and "
                         f"{s_offset} of {scales.size} scales")
    return out


def _channels(shape: tuple[int, ...] | list[int]) -> int:
    """Scales of one array: one per slice along the longer side of a matrix, else one."""
    return min(shape) if len(shape) == 2 else 1


def _broadcastable(scales: np.ndarray, shape: tuple[int, ...] | list[int]) -> np.ndarray:
    if len(shape) != 2:
        return scales.reshape(())
    rows, cols = shape
    return scales.reshape(rows, 1) if rows <= cols else scales.reshape(1, cols)


def _quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 codes and float32 scales (``x ~ codes * scale``) of one array."""
    if x.ndim == 2:
        axis = 1 if x.shape[0] <= x.shape[1] else 0  # reduce along the longer side
        peak = np.abs(x).max(axis=axis, keepdims=True) if x.size else np.zeros((0, 0))
    else:
        peak = np.asarray(np.abs(x).max() if x.size else 0.0).reshape(())
    scale = (peak / 127.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0)
    codes = np.clip(np.rint(x / safe), -127, 127).astype(np.int8)
    return codes, scale.reshape(-1)


def compress_with_feedback(delta: Weights, owed: Weights | None,
                           compression: str) -> tuple[Any, Weights]:
    """Encode ``delta`` plus the rounding error ``owed`` from earlier updates.

    Returns the record to send and the error now owed (what this encoding
    lost), so nothing a node learned is dropped for good, only delayed.  The
    caller keeps ``owed`` with the node's state (Flower's ``context.state``),
    wherever that node's next message runs.
    """
    if owed is not None and set(owed) == set(delta) and \
            all(owed[k].shape == v.shape for k, v in delta.items()):
        delta = {k: v + owed[k] for k, v in delta.items()}
    record = encode(delta, compression)
    sent = decode(record)
    return record, {k: v - sent[k] for k, v in delta.items()}
