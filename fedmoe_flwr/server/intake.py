"""Reply intake: every field of every reply is parsed and checked here, before any use.

A node is not trusted: a reply can miss records or keys, carry NaN where an
integer belongs, arrays of the wrong shape, an absurd example count or an
update a million times larger than the expert.  Each check raises
:class:`UpdateRejected` with a short countable reason and a detail a person can
act on; :func:`guarded` turns any other exception a malformed reply provokes
into a rejection too, so no reply can stop the server loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flwr.app import RecordDict

from fedmoe_flwr import contract as C
from fedmoe_flwr.codec import decode
from fedmoe_flwr.config import ConfigError, check_name
from fedmoe_flwr.merge.gateway import SUFFIX_A, SUFFIX_B, lora_modules
from fedmoe_flwr.merge.validation import UpdateRejected, check_weights, update_norm_ratio
from fedmoe_flwr.server.nodes import NodeInfo
from fedmoe_flwr.weights import Weights, from_array_record

T = TypeVar("T")
MAX_COUNT = 10**12  # no dataset, step or token count is larger


def guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a parser; any exception becomes ``UpdateRejected("malformed", ...)``."""
    try:
        return fn(*args, **kwargs)
    except UpdateRejected:
        raise
    except Exception as err:  # a hostile reply must never reach the loop as a crash
        raise UpdateRejected("malformed", f"{type(err).__name__}: {err}") from None


def _number(record: Any, key: str, lo: float, hi: float, *, integer: bool) -> Any:
    if key not in record:
        raise UpdateRejected("malformed", f"missing {key!r}")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UpdateRejected("malformed", f"{key!r} is {type(value).__name__}, not a number")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise UpdateRejected("out-of-range", f"{key!r} = {value!r} is not in [{lo}, {hi}]")
    if integer:
        if float(value) != int(value):
            raise UpdateRejected("malformed", f"{key!r} = {value!r} is not a whole number")
        return int(value)
    return float(value)


def _text(record: Any, key: str) -> str:
    value = record.get(key) if key in record else None
    if not isinstance(value, str):
        raise UpdateRejected("malformed", f"{key!r} must be a string, got {value!r}")
    return value


def _records(content: RecordDict, *, arrays: tuple[str, ...] = (), metrics: tuple[str, ...] = (),
             configs: tuple[str, ...] = ()) -> None:
    for kind, names, have in (("ArrayRecord", arrays, content.array_records),
                              ("MetricRecord", metrics, content.metric_records),
                              ("ConfigRecord", configs, content.config_records)):
        missing = [n for n in names if n not in have]
        if missing:
            raise UpdateRejected("malformed", f"reply lacks the {kind} {missing}")


@dataclass(frozen=True)
class Registration:
    """A parsed query reply: who the node is, and what it brings."""

    node: NodeInfo
    signature: dict[str, Any]  # LoRA r, alpha, target modules
    adapter: Weights | None  # its specialty's initial adapter
    centroid: Any  # the "mean" array, or None
    centroid_count: Any
    ngrams: Any = None  # the "counts" array, or None


def parse_registration(content: RecordDict, node_id: int) -> Registration:
    """Parse a query reply's INFO record and optional adapter / centroid."""
    _records(content, configs=(C.INFO,))
    info = content.config_records[C.INFO]
    try:
        specialty = check_name(_text(info, C.SPECIALTY), "the node's specialty")
    except ConfigError as err:
        raise UpdateRejected("bad-specialty", str(err)) from None
    adapter = (from_array_record(content.array_records[C.ADAPTER])
               if C.ADAPTER in content.array_records else None)
    centroid = None
    if C.CENTROID in content.array_records:
        centroid = from_array_record(content.array_records[C.CENTROID]).get("mean")
    ngrams = None
    if C.NGRAMS in content.array_records:
        ngrams = from_array_record(content.array_records[C.NGRAMS]).get("counts")
    node = NodeInfo(node_id, specialty, _number(info, C.NUM_TRAIN, 0, MAX_COUNT, integer=True),
                    _number(info, C.NUM_EVAL, 0, MAX_COUNT, integer=True),
                    _text(info, C.DEVICE)[:64], _text(info, C.MODEL_FINGERPRINT)[:256])
    return Registration(
        node, {"r": info.get(C.LORA_R), "alpha": info.get(C.LORA_ALPHA),
         "target_modules": info.get(C.LORA_TARGETS)},
        adapter, centroid, info.get(C.CENTROID_COUNT, 1), ngrams)


def check_initial_adapter(weights: Weights | None, rank: int, like: Weights | None) -> Weights:
    """An initial adapter must be LoRA pairs of the run's rank, finite, shaped like the others."""
    if weights is None:
        raise UpdateRejected("malformed", "registration without an initial adapter")
    if like is not None:
        check_weights(like, weights)
        return weights
    check_weights(weights, weights)
    for module in lora_modules(weights):
        a, b = weights[module + SUFFIX_A], weights[module + SUFFIX_B]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != rank or b.shape[1] != rank:
            raise UpdateRejected("wrong-shape", f"{module}: A {a.shape}, B {b.shape} are not "
                                 f"LoRA factors of rank {rank}")
    return weights


@dataclass(frozen=True)
class TrainReport:
    """A parsed train reply: the adapter and the node's numbers, not yet judged."""

    weights: Weights  # the adapter, or with ``is_delta`` its change from what was sent
    base_version: int
    num_examples: int
    train_loss: float
    metrics: dict[str, float]  # every metric, finite, for the update event
    is_delta: bool = False


def parse_train_reply(content: RecordDict) -> TrainReport:
    """Structure and numbers of a train reply; the update itself is judged by the loop.

    The reply holds the full adapter (``ADAPTER``) or, with compression, the
    delta from the weights the node was sent (``DELTA``), decoded here.
    """
    is_delta = C.DELTA in content.array_records
    _records(content, arrays=(C.DELTA if is_delta else C.ADAPTER,), metrics=(C.METRICS,))
    m = content.metric_records[C.METRICS]
    metrics = {k: _number(m, k, 0, MAX_COUNT, integer=False) for k in C.TRAIN_METRIC_KEYS}
    for optional in (C.PROCESS_SECONDS, C.PROCESS_ID, C.DELTA_NORM):
        if optional in m:
            metrics[optional] = _number(m, optional, 0, MAX_COUNT, integer=False)
    weights = decode(content.array_records[C.DELTA if is_delta else C.ADAPTER])
    return TrainReport(weights, _number(m, C.BASE_VERSION, 0, MAX_COUNT, integer=True),
                       _number(m, C.NUM_EXAMPLES, 1, MAX_COUNT, integer=True),
                       metrics[C.TRAIN_LOSS], metrics, is_delta)


def check_norm(update: Weights, base: Weights, current: Weights, max_ratio: float) -> None:
    """Refuse an update whose change is over ``max_ratio`` times the expert's norm."""
    if max_ratio <= 0:
        return
    ratio = update_norm_ratio(update, base, current)
    if not ratio <= max_ratio:
        raise UpdateRejected("too-large", f"update norm is {ratio:.3g}x the expert's, over "
                             f"strategy.max-update-norm = {max_ratio:g}")


def parse_eval_reply(content: RecordDict) -> dict[str, float]:
    """Held-out loss per adapter name; every value finite and non-negative."""
    _records(content, metrics=(C.EVAL_LOSSES,))
    losses = content.metric_records[C.EVAL_LOSSES]
    return {str(name): _number(losses, name, 0, 1e6, integer=False) for name in losses}
