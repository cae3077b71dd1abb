"""The message contract between the ServerApp and the ClientApps: one dataclass per message.

Every message kind is built (``to_content``) and parsed (``from_content``)
here, and both apps use these same classes, so record names, keys and value
ranges cannot drift apart.  Parsing never trusts the sender: a missing
record or key, a wrong type, NaN where a count belongs or an absurd number is
a :class:`ContractError` with a short countable ``reason`` and a detail a
person can act on; the weights themselves (keys, shapes, finiteness, norm)
are judged by the server against the expert (``merge.validation``).

=====================  ===========================  ================================
message                server -> node               node -> server
=====================  ===========================  ================================
``query``              (empty)                      :class:`Registration`
``train``              :class:`TrainInstruction`    :class:`TrainReply`
``evaluate``           :class:`EvalInstruction`     :class:`EvalReply`
=====================  ===========================  ================================

Keys use dashes, like Flower's own run-config keys.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as np

from .weights import Weights

GATEWAY = "gateway"  # adapter name of the gateway in evaluate messages and artifacts
GLOBAL = "global"  # the one shared adapter of the peer baseline (strategy flower-fedavg)
MAX_COUNT = 10**12  # no dataset, step or token count is larger

_ADAPTER, _DELTA, _CONFIG, _INFO, _METRICS = "adapter", "delta", "config", "info", "metrics"
_CENTROID, _NGRAMS, _LOSSES, _EVAL_PREFIX = "centroid", "ngrams", "eval-losses", "eval."


class ContractError(ValueError):
    """A message does not follow the contract; ``reason`` is a short countable label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _number(record: Any, key: str, lo: float, hi: float, *, integer: bool) -> Any:
    if key not in record:
        raise ContractError("malformed", f"missing {key!r}")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ContractError("malformed", f"{key!r} is {type(value).__name__}, not a number")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ContractError("out-of-range", f"{key!r} = {value!r} is not in [{lo}, {hi}]")
    if integer:
        if float(value) != int(value):
            raise ContractError("malformed", f"{key!r} = {value!r} is not a whole number")
        return int(value)
    return float(value)


def _text(record: Any, key: str, limit: int = 4096) -> str:
    value = record[key] if key in record else None
    if not isinstance(value, str):
        raise ContractError("malformed", f"{key!r} must be a string, got {value!r:.80}")
    if len(value) > limit:
        raise ContractError("out-of-range", f"{key!r} is {len(value)} characters, over {limit}")
    return value


def _need(content: Any, *, arrays: tuple[str, ...] = (), metrics: tuple[str, ...] = (),
          configs: tuple[str, ...] = ()) -> None:
    for kind, names, have in (("ArrayRecord", arrays, content.array_records),
                              ("MetricRecord", metrics, content.metric_records),
                              ("ConfigRecord", configs, content.config_records)):
        missing = [n for n in names if n not in have]
        if missing:
            raise ContractError("malformed", f"message lacks the {kind} {missing}")


def _decode(record: Any) -> Weights:
    from .codec import decode

    try:
        return decode(record)
    except (ValueError, TypeError, KeyError) as err:
        raise ContractError("malformed", f"undecodable weights ({err})") from None


def _vector(content: Any, name: str, key: str) -> np.ndarray | None:
    from .wire import from_array_record

    if name not in content.array_records:
        return None
    try:
        return from_array_record(content.array_records[name]).get(key)
    except (ValueError, TypeError) as err:
        raise ContractError("malformed", f"undecodable {name} ({err})") from None


@dataclass(frozen=True)
class LoraSignature:
    """What must match between nodes and server for adapters to be exchangeable."""

    r: int
    alpha: int
    target_modules: str  # JSON list, sorted
    variant: str = "standard"  # model.lora-variant: ffa nodes share one frozen A


@dataclass(frozen=True)
class Registration:
    """A node's reply to ``query``: who it is, what it brings, and nothing more.

    No local path or other detail of the node's machine is sent: only what the
    server uses (admission, weighting, routing statistics).
    """

    specialty: str
    num_train: int
    num_eval: int
    fingerprint: str  # of the base model's files: nodes must agree
    device: str
    lora: LoraSignature
    adapter: Weights | None  # the specialty's initial adapter (seeded by its name)
    centroid: np.ndarray | None = None  # mean prompt embedding (centroid router)
    centroid_count: int = 0  # prompts averaged into it
    ngrams: np.ndarray | None = None  # hashed n-gram counts of its prompts (ngrams router)

    def to_content(self) -> Any:
        """The reply's RecordDict."""
        from flwr.app import ConfigRecord, RecordDict

        from .wire import to_array_record

        info = ConfigRecord({
            "specialty": self.specialty, "num-train-examples": self.num_train,
            "num-eval-examples": self.num_eval, "model-fingerprint": self.fingerprint,
            "device": self.device, "lora-r": self.lora.r, "lora-alpha": self.lora.alpha,
            "lora-target-modules": self.lora.target_modules,
            "lora-variant": self.lora.variant, "centroid-examples": self.centroid_count})
        records: dict[str, Any] = {_INFO: info}
        if self.adapter is not None:
            records[_ADAPTER] = to_array_record(self.adapter)
        if self.centroid is not None:
            records[_CENTROID] = to_array_record({"mean": self.centroid})
        if self.ngrams is not None:
            records[_NGRAMS] = to_array_record({"counts": self.ngrams})
        return RecordDict(records)

    @classmethod
    def from_content(cls, content: Any) -> Registration:
        """Parse a query reply (the server checks names, signature and arrays further)."""
        _need(content, configs=(_INFO,))
        info = content.config_records[_INFO]
        adapter = (_decode(content.array_records[_ADAPTER])
                   if _ADAPTER in content.array_records else None)
        lora = LoraSignature(_number(info, "lora-r", 1, 1 << 16, integer=True),
                             _number(info, "lora-alpha", 1, 1 << 20, integer=True),
                             _text(info, "lora-target-modules"),
                             _text(info, "lora-variant", 32) if "lora-variant" in info
                             else "standard")
        count = (_number(info, "centroid-examples", 0, MAX_COUNT, integer=True)
                 if "centroid-examples" in info else 0)
        return cls(_text(info, "specialty", 256),
                   _number(info, "num-train-examples", 0, MAX_COUNT, integer=True),
                   _number(info, "num-eval-examples", 0, MAX_COUNT, integer=True),
                   _text(info, "model-fingerprint", 256), _text(info, "device", 64), lora,
                   adapter, _vector(content, _CENTROID, "mean"), count,
                   _vector(content, _NGRAMS, "counts"))


@dataclass(frozen=True)
class TrainInstruction:
    """``train``: the adapter to train, its version, and the node's training budget."""

    adapter: str  # the node's specialty, or GLOBAL (peer baseline)
    version: int  # of the weights sent: the reply's base version
    time_budget: float  # seconds of local training
    max_steps: int  # 0 = only the time budget
    learning_rate: float
    seed: int
    frozen_a: str = ""  # ffa: checksum of the frozen A the node must hold (only B is sent)

    def to_content(self, weights_record: Any) -> Any:
        """The message's RecordDict, with the adapter's already-encoded weights."""
        from flwr.app import ConfigRecord, RecordDict

        return RecordDict({_ADAPTER: weights_record, _CONFIG: ConfigRecord({
            "adapter": self.adapter, "version": self.version,
            "time-budget-s": self.time_budget, "max-steps": self.max_steps,
            "learning-rate": self.learning_rate, "seed": self.seed,
            "frozen-a": self.frozen_a})})

    @classmethod
    def from_content(cls, content: Any) -> tuple[TrainInstruction, Weights]:
        """The instruction and the weights it brings (float32, whatever the wire encoding)."""
        _need(content, arrays=(_ADAPTER,), configs=(_CONFIG,))
        c = content.config_records[_CONFIG]
        instr = cls(_text(c, "adapter", 256), _number(c, "version", 0, MAX_COUNT, integer=True),
                    _number(c, "time-budget-s", 0, 1e9, integer=False),
                    _number(c, "max-steps", 0, MAX_COUNT, integer=True),
                    _number(c, "learning-rate", 0, 1, integer=False),
                    _number(c, "seed", 0, 2**63 - 1, integer=True),
                    _text(c, "frozen-a", 128) if "frozen-a" in c else "")
        return instr, _decode(content.array_records[_ADAPTER])


@dataclass(frozen=True)
class TrainMetrics:
    """What a node says about one round of local training."""

    num_examples: int
    train_loss: float
    steps: int
    tokens: int
    train_seconds: float
    load_seconds: float  # model and data setup paid by this message
    base_version: int  # the version it trained from (the instruction's)
    process_seconds: float = 0.0  # process start-up paid by this message
    process_id: int = 0  # the process that handled it (a warm worker keeps one)
    delta_norm: float = -1.0  # privacy on: the delta's L2 norm before clipping (-1 = not sent)
    in_flight_seconds: float = 0.0  # overlap: training done while the previous update travelled

    def to_record(self) -> Any:
        """The reply's MetricRecord."""
        from flwr.app import MetricRecord

        return MetricRecord({f.name.replace("_", "-"): getattr(self, f.name)
                             for f in fields(self)})

    @classmethod
    def from_record(cls, m: Any) -> TrainMetrics:
        """Every metric finite and in range; ``num-examples`` at least 1."""
        out: dict[str, Any] = {}
        for f in fields(cls):
            key = f.name.replace("_", "-")
            if key not in m and f.default is not MISSING:
                continue  # an optional metric keeps its default
            lo = {"num_examples": 1, "delta_norm": -1}.get(f.name, 0)
            out[f.name] = _number(m, key, lo, MAX_COUNT, integer=f.type == "int")
        return cls(**out)


@dataclass(frozen=True)
class TrainReply:
    """A node's reply to ``train``: its adapter, or (compressed) its change, and its metrics."""

    metrics: TrainMetrics
    is_delta: bool  # the weights are the change from what the instruction sent

    def to_content(self, weights_record: Any) -> Any:
        """The reply's RecordDict, with the already-encoded weights or delta."""
        from flwr.app import RecordDict

        return RecordDict({_DELTA if self.is_delta else _ADAPTER: weights_record,
                           _METRICS: self.metrics.to_record()})

    @classmethod
    def from_content(cls, content: Any) -> tuple[TrainReply, Weights]:
        """The reply and its decoded float32 weights (or delta)."""
        is_delta = _DELTA in content.array_records
        name = _DELTA if is_delta else _ADAPTER
        _need(content, arrays=(name,), metrics=(_METRICS,))
        metrics = TrainMetrics.from_record(content.metric_records[_METRICS])
        return cls(metrics, is_delta), _decode(content.array_records[name])


@dataclass(frozen=True)
class EvalInstruction:
    """``evaluate``: score these adapters on the node's held-out split of ``domain``.

    ``shapes`` gives (rank, alpha) of adapters whose LoRA shape differs from the
    run's (a ``cat`` gateway has rank experts x r).
    """

    domain: str
    shapes: dict[str, tuple[int, int]]

    def to_content(self, records: dict[str, Any]) -> Any:
        """The message's RecordDict, one encoded record per adapter name."""
        from flwr.app import ConfigRecord, RecordDict

        config: dict[str, Any] = {"domain": self.domain}
        for name, (rank, alpha) in self.shapes.items():
            config[f"lora-r.{name}"], config[f"lora-alpha.{name}"] = rank, alpha
        return RecordDict({**{_EVAL_PREFIX + n: r for n, r in records.items()},
                           _CONFIG: ConfigRecord(config)})

    @classmethod
    def from_content(cls, content: Any) -> tuple[EvalInstruction, dict[str, Weights]]:
        """The instruction and every adapter's decoded weights."""
        _need(content, configs=(_CONFIG,))
        c = content.config_records[_CONFIG]
        adapters = {name.removeprefix(_EVAL_PREFIX): _decode(rec)
                    for name, rec in content.array_records.items()
                    if name.startswith(_EVAL_PREFIX)}
        shapes = {n: (_number(c, f"lora-r.{n}", 1, 1 << 20, integer=True),
                      _number(c, f"lora-alpha.{n}", 1, 1 << 24, integer=True))
                  for n in adapters if f"lora-r.{n}" in c}
        return cls(_text(c, "domain", 256), shapes), adapters


@dataclass(frozen=True)
class EvalReply:
    """Held-out loss per adapter name, each finite and non-negative."""

    losses: dict[str, float]

    def to_content(self) -> Any:
        """The reply's RecordDict."""
        from flwr.app import MetricRecord, RecordDict

        return RecordDict({_LOSSES: MetricRecord(dict(self.losses))})

    @classmethod
    def from_content(cls, content: Any) -> EvalReply:
        """Parse an evaluate reply."""
        _need(content, metrics=(_LOSSES,))
        losses = content.metric_records[_LOSSES]
        return cls({str(n): _number(losses, n, 0, 1e6, integer=False) for n in losses})
