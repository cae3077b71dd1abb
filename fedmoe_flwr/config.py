"""Typed run configuration, parsed once from Flower's flat run config.

Flower hands both apps a flat ``{"train.learning-rate": 0.002, ...}`` mapping.
It is parsed here into frozen dataclasses and validated before any training
starts, so a typo or a nonsense value stops the run with a message that names
the key, the bad value and what would be valid, instead of failing an hour in.
Downstream code never reads ``context.run_config`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

QWEN_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
STALENESS_FUNCTIONS = ("constant", "polynomial", "hinge", "exponential")
GATEWAY_METHODS = ("cat", "svd", "ties", "dare-ties", "weighted-average", "sum")
GATEWAY_WEIGHTINGS = ("examples", "equal")
ON_ERROR = ("fail", "skip")
SYNC_SCOPES = ("global", "specialty")
ROUTER_METHODS = ("centroid", "loss", "keywords")
ROUTER_COMBINE = ("mix", "stitch")
QUANTIZATION_BITS = (0, 4, 8)


class ConfigError(ValueError):
    """A run-config value is missing, of the wrong type, or out of range."""


def split_list(value: str) -> tuple[str, ...]:
    """Split a comma-separated run-config string (run config holds scalars only)."""
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


class _Reader:
    """Typed access to the flat run config that names the key in every error."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.used: set[str] = set()

    def get(self, key: str, kind: type, default: Any) -> Any:
        self.used.add(key)
        value = self.raw.get(key, default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(
                f"run config key '{key}' must be {kind.__name__}, got {value!r} "
                f"({type(value).__name__})"
            )
        return value


def _check(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise ConfigError(f"run config key '{key}' must be {valid}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Which base model to load and how to adapt it.

    ``name`` is a Hugging Face id, a local path, or ``qwen2-tiny`` (the embedded
    model that is built locally, so everything runs offline on a CPU).
    """

    name: str = "qwen2-tiny"
    quantization: int = 4
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = QWEN_LINEAR_MODULES
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        _check(bool(self.name), "model.name", self.name, "a model id or path")
        _check(self.quantization in QUANTIZATION_BITS, "model.quantization", self.quantization,
               "one of 0 (none), 4 (nf4) or 8")
        _check(self.lora_r > 0, "model.lora-r", self.lora_r, "a positive integer")
        _check(self.lora_alpha > 0, "model.lora-alpha", self.lora_alpha, "a positive integer")
        _check(0.0 <= self.lora_dropout < 1.0, "model.lora-dropout", self.lora_dropout,
               "in [0, 1)")
        _check(len(self.target_modules) > 0, "model.target-modules", self.target_modules,
               "a non-empty comma-separated list of module names")


@dataclass(frozen=True)
class TrainConfig:
    """Local training settings sent with every train instruction."""

    sync_interval: float = 10.0
    max_steps: int = 0
    learning_rate: float = 2e-3
    batch_size: int = 8
    max_seq_len: int = 192
    torch_threads: int = 1
    prompt_loss_weight: float = 0.1

    def __post_init__(self) -> None:
        _check(self.sync_interval > 0, "train.sync-interval", self.sync_interval,
               "> 0 seconds")
        _check(self.max_steps >= 0, "train.max-steps", self.max_steps, ">= 0 (0 = no cap)")
        _check(0 < self.learning_rate < 1, "train.learning-rate", self.learning_rate, "in (0, 1)")
        _check(self.batch_size > 0, "train.batch-size", self.batch_size, "a positive integer")
        _check(self.max_seq_len >= 16, "train.max-seq-len", self.max_seq_len, ">= 16 tokens")
        _check(self.torch_threads >= 0, "train.torch-threads", self.torch_threads,
               ">= 0 (0 = torch default)")
        _check(0 <= self.prompt_loss_weight <= 1, "train.prompt-loss-weight",
               self.prompt_loss_weight, "in [0, 1] (0 = answer tokens only)")


@dataclass(frozen=True)
class DataConfig:
    """How nodes read and split their JSONL files."""

    on_error: str = "fail"
    eval_fraction: float = 0.1
    max_eval_examples: int = 48

    def __post_init__(self) -> None:
        _check(self.on_error in ON_ERROR, "data.on-error", self.on_error, f"one of {ON_ERROR}")
        _check(0 < self.eval_fraction < 1, "data.eval-fraction", self.eval_fraction, "in (0, 1)")
        _check(self.max_eval_examples > 0, "data.max-eval-examples", self.max_eval_examples,
               "a positive integer")


@dataclass(frozen=True)
class StrategyConfig:
    """Aggregation strategy and its parameters (see ``strategies/``)."""

    name: str = "fedasync"
    alpha: float = 0.6
    staleness: str = "polynomial"
    staleness_a: float = 0.5
    staleness_b: int = 4
    staleness_decay: float = 0.5
    max_staleness: int = 20
    buffer_size: int = 3
    server_lr: float = 1.0
    round_timeout: float = 0.0
    sync_scope: str = "global"

    def __post_init__(self) -> None:
        _check(self.round_timeout >= 0, "strategy.round-timeout", self.round_timeout,
               ">= 0 seconds (0 = wait for every node)")
        _check(self.sync_scope in SYNC_SCOPES, "strategy.sync-scope", self.sync_scope,
               f"one of {SYNC_SCOPES}")
        _check(self.buffer_size >= 1, "strategy.buffer-size", self.buffer_size,
               "a positive integer")
        _check(self.server_lr > 0, "strategy.server-lr", self.server_lr, "> 0")
        _check(0 < self.alpha <= 1, "strategy.alpha", self.alpha, "in (0, 1]")
        _check(self.staleness in STALENESS_FUNCTIONS, "strategy.staleness", self.staleness,
               f"one of {STALENESS_FUNCTIONS}")
        _check(self.staleness_a >= 0, "strategy.staleness-a", self.staleness_a, ">= 0")
        _check(self.staleness_b >= 0, "strategy.staleness-b", self.staleness_b, ">= 0")
        _check(0 < self.staleness_decay <= 1, "strategy.staleness-decay", self.staleness_decay,
               "in (0, 1]")
        _check(self.max_staleness >= 0, "strategy.max-staleness", self.max_staleness, ">= 0")


@dataclass(frozen=True)
class GatewayConfig:
    """How the gateway adapter is built from the experts."""

    method: str = "cat"
    weighting: str = "examples"
    rank: int = 0
    density: float = 0.5

    def __post_init__(self) -> None:
        _check(self.rank >= 0, "gateway.rank", self.rank, ">= 0 (0 = the experts' LoRA rank)")
        _check(0 < self.density <= 1, "gateway.density", self.density, "in (0, 1]")
        _check(self.method in GATEWAY_METHODS, "gateway.method", self.method,
               f"one of {GATEWAY_METHODS}")
        _check(self.weighting in GATEWAY_WEIGHTINGS, "gateway.weighting", self.weighting,
               f"one of {GATEWAY_WEIGHTINGS}")


@dataclass(frozen=True)
class RouterConfig:
    """How ``fedmoe ask`` picks experts (and what nodes send for it at registration)."""

    method: str = "centroid"
    top_k: int = 2
    threshold: float = 0.25
    temperature: float = 0.25
    combine: str = "mix"
    centroid_examples: int = 256
    embedding_layer: int = 0
    candidate_tokens: int = 0
    keywords: str = ""

    def __post_init__(self) -> None:
        _check(self.method in ROUTER_METHODS, "router.method", self.method,
               f"one of {ROUTER_METHODS}")
        _check(self.top_k >= 1, "router.top-k", self.top_k, ">= 1")
        _check(0 < self.threshold <= 1, "router.threshold", self.threshold, "in (0, 1]")
        _check(self.temperature > 0, "router.temperature", self.temperature, "> 0")
        _check(self.combine in ROUTER_COMBINE, "router.combine", self.combine,
               f"one of {ROUTER_COMBINE}")
        _check(self.candidate_tokens >= 0, "router.candidate-tokens", self.candidate_tokens,
               ">= 0 (0 = score the prompt itself)")
        _check(self.centroid_examples >= 0, "router.centroid-examples", self.centroid_examples,
               ">= 0 (0 = nodes send no centroid)")


@dataclass(frozen=True)
class RunSettings:
    """Server-side run control: specialties, stop conditions, outputs."""

    specialties: tuple[str, ...] = ("python_expert", "sql_expert", "docs_expert")
    duration: float = 120.0
    max_updates: int = 0
    output_dir: str = "outputs"
    name: str = ""
    seed: int = 42
    eval_every: float = 0.0
    register_timeout: float = 120.0
    message_ttl: float = 900.0
    drain_timeout: float = 60.0
    keep_versions: int = 2
    resume_from: str = ""

    def __post_init__(self) -> None:
        _check(self.keep_versions >= 0, "run.keep-versions", self.keep_versions,
               ">= 0 (0 = keep every version)")
        _check(len(self.specialties) > 0, "run.specialties", self.specialties,
               "a non-empty comma-separated list")
        _check(len(set(self.specialties)) == len(self.specialties), "run.specialties",
               self.specialties, "a list without duplicates")
        _check(self.duration > 0, "run.duration", self.duration, "> 0 seconds")
        _check(self.max_updates >= 0, "run.max-updates", self.max_updates, ">= 0 (0 = no cap)")
        _check(self.eval_every >= 0, "eval.every-s", self.eval_every, ">= 0 (0 = start and end)")
        _check(self.register_timeout > 0, "run.register-timeout", self.register_timeout, "> 0")
        _check(self.message_ttl > 0, "run.message-ttl", self.message_ttl, "> 0")
        _check(self.drain_timeout >= 0, "run.drain-timeout", self.drain_timeout, ">= 0")


@dataclass(frozen=True)
class SimulationConfig:
    """Simulation only: which specialty, data file and speed each partition gets."""

    specialties: tuple[str, ...] = ("python_expert", "sql_expert", "docs_expert")
    data_paths: tuple[str, ...] = ("data/python.jsonl", "data/sql.jsonl", "data/docs.jsonl")
    speed_factors: tuple[float, ...] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        _check(len(self.specialties) == len(self.data_paths), "sim.data-paths", self.data_paths,
               f"one path per entry of sim.specialties ({len(self.specialties)})")
        _check(all(s >= 1.0 for s in self.speed_factors), "sim.speed-factors",
               self.speed_factors, "factors >= 1 (1 = full speed, 4 = four times slower)")


@dataclass(frozen=True)
class AppConfig:
    """Everything both apps need, parsed from one run config."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    run: RunSettings = field(default_factory=RunSettings)
    sim: SimulationConfig = field(default_factory=SimulationConfig)


def parse_run_config(raw: Mapping[str, Any]) -> AppConfig:
    """Parse and validate Flower's flat run config.

    Missing keys take the defaults above, so tests and the Python API can pass
    only what they change.  Unknown keys are rejected: a misspelt key that is
    silently ignored is the most expensive kind of config bug.
    """
    r = _Reader(raw)
    d = AppConfig()
    model = ModelConfig(
        name=r.get("model.name", str, d.model.name),
        quantization=r.get("model.quantization", int, d.model.quantization),
        lora_r=r.get("model.lora-r", int, d.model.lora_r),
        lora_alpha=r.get("model.lora-alpha", int, d.model.lora_alpha),
        lora_dropout=r.get("model.lora-dropout", float, d.model.lora_dropout),
        target_modules=split_list(r.get("model.target-modules", str,
                                        ",".join(d.model.target_modules))),
        gradient_checkpointing=r.get("model.gradient-checkpointing", bool,
                                     d.model.gradient_checkpointing),
    )
    train = TrainConfig(
        sync_interval=r.get("train.sync-interval", float, d.train.sync_interval),
        max_steps=r.get("train.max-steps", int, d.train.max_steps),
        learning_rate=r.get("train.learning-rate", float, d.train.learning_rate),
        batch_size=r.get("train.batch-size", int, d.train.batch_size),
        max_seq_len=r.get("train.max-seq-len", int, d.train.max_seq_len),
        torch_threads=r.get("train.torch-threads", int, d.train.torch_threads),
        prompt_loss_weight=r.get("train.prompt-loss-weight", float,
                                 d.train.prompt_loss_weight),
    )
    data = DataConfig(
        on_error=r.get("data.on-error", str, d.data.on_error),
        eval_fraction=r.get("data.eval-fraction", float, d.data.eval_fraction),
        max_eval_examples=r.get("data.max-eval-examples", int, d.data.max_eval_examples),
    )
    strategy = StrategyConfig(
        name=r.get("strategy.name", str, d.strategy.name),
        alpha=r.get("strategy.alpha", float, d.strategy.alpha),
        staleness=r.get("strategy.staleness", str, d.strategy.staleness),
        staleness_a=r.get("strategy.staleness-a", float, d.strategy.staleness_a),
        staleness_b=r.get("strategy.staleness-b", int, d.strategy.staleness_b),
        staleness_decay=r.get("strategy.staleness-decay", float, d.strategy.staleness_decay),
        max_staleness=r.get("strategy.max-staleness", int, d.strategy.max_staleness),
        buffer_size=r.get("strategy.buffer-size", int, d.strategy.buffer_size),
        server_lr=r.get("strategy.server-lr", float, d.strategy.server_lr),
        round_timeout=r.get("strategy.round-timeout", float, d.strategy.round_timeout),
        sync_scope=r.get("strategy.sync-scope", str, d.strategy.sync_scope),
    )
    gateway = GatewayConfig(
        method=r.get("gateway.method", str, d.gateway.method),
        weighting=r.get("gateway.weighting", str, d.gateway.weighting),
        rank=r.get("gateway.rank", int, d.gateway.rank),
        density=r.get("gateway.density", float, d.gateway.density),
    )
    router = RouterConfig(
        method=r.get("router.method", str, d.router.method),
        top_k=r.get("router.top-k", int, d.router.top_k),
        threshold=r.get("router.threshold", float, d.router.threshold),
        temperature=r.get("router.temperature", float, d.router.temperature),
        combine=r.get("router.combine", str, d.router.combine),
        centroid_examples=r.get("router.centroid-examples", int, d.router.centroid_examples),
        embedding_layer=r.get("router.embedding-layer", int, d.router.embedding_layer),
        candidate_tokens=r.get("router.candidate-tokens", int, d.router.candidate_tokens),
        keywords=r.get("router.keywords", str, d.router.keywords),
    )
    run = RunSettings(
        specialties=split_list(r.get("run.specialties", str, ",".join(d.run.specialties))),
        duration=r.get("run.duration", float, d.run.duration),
        max_updates=r.get("run.max-updates", int, d.run.max_updates),
        output_dir=r.get("run.output-dir", str, d.run.output_dir),
        name=r.get("run.name", str, d.run.name),
        seed=r.get("run.seed", int, d.run.seed),
        eval_every=r.get("eval.every-s", float, d.run.eval_every),
        register_timeout=r.get("run.register-timeout", float, d.run.register_timeout),
        message_ttl=r.get("run.message-ttl", float, d.run.message_ttl),
        drain_timeout=r.get("run.drain-timeout", float, d.run.drain_timeout),
        keep_versions=r.get("run.keep-versions", int, d.run.keep_versions),
        resume_from=r.get("run.resume-from", str, d.run.resume_from),
    )
    speeds_raw = split_list(r.get("sim.speed-factors", str,
                                  ",".join(str(s) for s in d.sim.speed_factors)))
    try:
        speeds = tuple(float(s) for s in speeds_raw)
    except ValueError as err:
        raise ConfigError(
            f"run config key 'sim.speed-factors' must be comma-separated numbers, got "
            f"{speeds_raw!r}"
        ) from err
    sim = SimulationConfig(
        specialties=split_list(r.get("sim.specialties", str, ",".join(d.sim.specialties))),
        data_paths=split_list(r.get("sim.data-paths", str, ",".join(d.sim.data_paths))),
        speed_factors=speeds,
    )
    unknown = sorted(set(raw) - r.used)
    if unknown:
        raise ConfigError(
            f"unknown run config key(s) {unknown}; valid keys: {sorted(r.used)}"
        )
    return AppConfig(model=model, train=train, data=data, strategy=strategy, gateway=gateway,
                     router=router, run=run, sim=sim)
