"""Adapter weights on the wire: one packed float32 vector and its index per ArrayRecord.

Arrays are float32 on the wire because ``ArrayRecord`` cannot carry bfloat16.
This module imports neither torch nor PEFT (the server uses it); Flower's
record types are imported where they are built.
"""

from __future__ import annotations

import io
import json
import math
import zlib
from typing import Any

import numpy as np

from .weights import Weights

PACKED = "packed"  # every matrix, flattened in key order, in one float32 vector
INDEX = "packed-index"  # UTF-8 JSON [[key, shape], ...] as uint8: how to cut PACKED apart


def to_array_record(weights: Weights) -> Any:
    """Pack weights for a message as one float32 vector plus its index.

    Flower moves each ``Array`` of a message as a separate object, one request
    per hop; an adapter of Qwen2-0.5B has 336 matrices, so per-matrix arrays
    cost hundreds of requests per message where one vector (chunked at 5 MiB
    by Flower) costs a handful.  Sorted keys make the bytes reproducible.  The
    vector is written straight into its ``.npy`` bytes (what ``Array(ndarray)``
    produces, without its two extra copies), so any Flower peer reads it with
    ``Array.numpy()``.
    """
    from flwr.app import ArrayRecord

    keys = sorted(weights)
    parts = [np.ascontiguousarray(weights[k], dtype=np.float32) for k in keys]
    size = sum(p.size for p in parts)
    # One allocation and one copy: bytes.join reads each array's buffer directly.
    data = b"".join([_npy_header(size), *(memoryview(p).cast("B") for p in parts)])
    index = json.dumps([[k, list(np.shape(weights[k]))] for k in keys]).encode()
    return ArrayRecord({PACKED: _npy_array(data, size),
                        INDEX: _npy_array(_npy_header(len(index), "|u1") + index, len(index),
                                          "uint8")})


def to_flower_record(weights: Weights) -> Any:
    """Weights in Flower's own layout, one ``Array`` per key (sorted), float32.

    What Flower's strategies (``flwr.serverapp.strategy.FedAvg``) aggregate key
    by key; used only by the peer baseline (``strategy.name = "flower-fedavg"``).
    ``from_array_record`` reads it back.
    """
    from flwr.app import Array, ArrayRecord

    return ArrayRecord({k: Array(np.ascontiguousarray(weights[k], np.float32))
                        for k in sorted(weights)})


def _npy_header(length: int, descr: str = "<f4") -> bytes:
    """The ``.npy`` (format 1.0) header of a 1-D little-endian array of ``length`` items."""
    from numpy.lib import format as npy

    out = io.BytesIO()
    npy.write_array_header_1_0(out, {"descr": descr, "fortran_order": False,
                                     "shape": (length,)})
    return out.getvalue()  # magic, version, header length and the padded header


def _npy_array(data: bytes, length: int, dtype: str = "float32") -> Any:
    from flwr.app import Array

    return Array(dtype=dtype, shape=(length,), stype="numpy.ndarray", data=data)


def _vector(array: Any) -> np.ndarray:
    """A 1-D ``.npy`` Array's values as a read-only view of its bytes (no copy).

    ``Array.numpy()`` copies the payload through ``np.load``; at 7B shapes that
    is 80 MB per reply.  Anything but a plain little-endian 1-D ``.npy`` falls
    back to it.
    """
    from numpy.lib import format as npy

    data = array.data
    if array.stype == "numpy.ndarray" and isinstance(data, bytes):
        stream = io.BytesIO(data)
        try:
            version = npy.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = npy.read_array_header_1_0(stream)
                if len(shape) == 1 and not dtype.hasobject and dtype.byteorder != ">":
                    return np.frombuffer(data, dtype, count=shape[0], offset=stream.tell())
        except ValueError:
            pass
    return array.numpy()


def from_array_record(record: Any) -> Weights:
    """Unpack a message's ArrayRecord (packed, or one array per key from other clients).

    A malformed index raises ``ValueError``; shapes, dtypes and values are
    checked by the receiver (``merge.validation``).
    """
    if INDEX not in record:
        return {k: arr.numpy() for k, arr in record.items()}
    if PACKED not in record or len(record) != 2:
        raise ValueError(f"a packed record holds exactly {PACKED!r} and {INDEX!r}, got "
                         f"{sorted(record)}")
    index = read_index(record[INDEX])
    flat = _vector(record[PACKED])
    if flat.ndim != 1:
        raise ValueError("packed weights must be one vector")
    out: Weights = {}
    offset = 0
    for key, shape in index_entries(index):
        size = math.prod(shape)
        if offset + size > flat.size:
            raise ValueError(f"packed index needs more than the {flat.size} values sent")
        out[key] = flat[offset:offset + size].reshape(shape)
        offset += size
    if offset != flat.size:
        raise ValueError(f"packed index covers {offset} of {flat.size} values")
    return out


MAX_INDEX_BYTES = 64 * 2**20  # an index of a few thousand keys is kilobytes


def read_index(array: Any) -> Any:
    """The packed index: UTF-8 JSON, or (compressed records) zlib-compressed JSON.

    JSON starts with ``[``, zlib with ``0x78``, so the two cannot be confused.
    Decompression stops at 64 MiB: a hostile index cannot exhaust memory.
    """
    raw = _vector(array).tobytes()
    if raw[:1] == b"\x78":
        inflater = zlib.decompressobj()
        raw = inflater.decompress(raw, MAX_INDEX_BYTES)
        if inflater.unconsumed_tail:
            raise ValueError(f"packed index inflates beyond {MAX_INDEX_BYTES} bytes")
    return json.loads(raw.decode("utf-8"))


def index_entries(index: Any) -> list[tuple[str, list[int]]]:
    """The ``[key, shape]`` entries of a packed index, each checked (``ValueError`` if not)."""
    if not isinstance(index, list):
        raise ValueError("packed index must be a list")
    seen: set[str] = set()
    out = []
    for entry in index:
        if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str)
                or entry[0] in seen or not isinstance(entry[1], list)
                or not all(isinstance(d, int) and 0 <= d < 2**31 for d in entry[1])):
            raise ValueError(f"bad packed index entry {str(entry)[:80]}")
        seen.add(entry[0])
        out.append((entry[0], entry[1]))
    return out
