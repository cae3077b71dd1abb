"""Typed run configuration, declared once and parsed from Flower's flat run config.

Flower hands both apps a flat ``{"train.learning-rate": 0.003, ...}`` mapping.
Each key is declared exactly once, as a dataclass field whose metadata holds its
run-config key, help text, range or valid choices (:func:`setting`); the parser
and the validator are loops over those fields.  A typo or a nonsense value
stops the run before any training, with a message that names the key, the bad
value and what would be valid.  ``pyproject.toml`` repeats every key with its
default for ``flwr run``; a test keeps the two equal.  Downstream code never
reads ``context.run_config`` itself.
"""

from __future__ import annotations

import functools
import math
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from .codec import COMPRESSIONS
from .merge.gateway import GATEWAY_METHODS, GATEWAY_WEIGHTINGS

QWEN_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ON_ERROR = ("fail", "skip")
ROUTER_COMBINE = ("mix", "stitch")
QUANTIZATION_BITS = (0, 4, 8)
LORA_VARIANTS = ("standard", "ffa")
MODEL_SOURCES = ("auto", "huggingface", "modelscope", "local", "gguf")

# Names that become directory names (run.name, specialties): no path parts, no hidden files.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
RESERVED_NAMES = ("latest", "gateway", "global")
DAY = 86_400.0


class ConfigError(ValueError):
    """A run-config value is missing, of the wrong type, or out of range."""


def router_methods() -> tuple[str, ...]:
    """The registered routing methods (``fedmoe_flwr.routing`` registers them)."""
    from fedmoe_flwr.routing import router_names

    return router_names()


def check_name(value: str, what: str) -> str:
    """Refuse a name that could escape its directory or collide with a reserved one."""
    if not SAFE_NAME.fullmatch(value) or ".." in value or value in RESERVED_NAMES:
        raise ConfigError(f"{what} must be 1-64 letters, digits, '_', '-' or '.' (not starting "
                          f"with '.' or '-', no '..', not {' or '.join(RESERVED_NAMES)}), "
                          f"got {value!r}")
    return value


def setting(default: Any, key: str, help: str, *, ge: float | None = None,
            gt: float | None = None, le: float | None = None, lt: float | None = None,
            choices: tuple[Any, ...] | None = None, name: bool = False,
            choices_of: Any = None) -> Any:
    """Declare one run-config key: its default, help text and what values are valid.

    Numeric keys carry a closed or open bound on both sides, so no value is
    unbounded (``inf`` and absurd sizes are refused where they are parsed).
    ``name=True`` restricts strings (or each list item) to :data:`SAFE_NAME`.
    ``choices_of`` is a function returning the valid values of a registry
    (the routers), asked when a value is checked, so this module need not
    import what registers them.
    """
    meta = {"key": key, "help": help, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "choices": choices, "name": name, "choices_of": choices_of}
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


def _range_text(m: Mapping[str, Any]) -> str:
    lo = f"[{m['ge']}" if m["ge"] is not None else f"({m['gt']}"
    hi = f"{m['le']}]" if m["le"] is not None else f"{m['lt']})"
    return f"in {lo}, {hi}"


def _check_value(m: Mapping[str, Any], value: Any) -> None:
    """Apply one field's declared range / choices / name rule to a parsed value."""
    items = value if isinstance(value, tuple) else (value,)
    choices = m["choices"] if m.get("choices_of") is None else tuple(m["choices_of"]())
    for item in items:
        if choices is not None and item not in choices:
            raise ConfigError(f"run config key '{m['key']}' must be one of {choices}, "
                              f"got {value!r}")
        if m["name"]:
            check_name(item, f"run config key '{m['key']}'")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            lo_ok = (m["ge"] is None or item >= m["ge"]) and (m["gt"] is None or item > m["gt"])
            hi_ok = (m["le"] is None or item <= m["le"]) and (m["lt"] is None or item < m["lt"])
            if not (math.isfinite(item) and lo_ok and hi_ok):
                raise ConfigError(f"run config key '{m['key']}' must be {_range_text(m)}, "
                                  f"got {value!r}")


class Section:
    """Base of the config sections: validates every declared field on creation."""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            if "key" in f.metadata:
                _check_value(f.metadata, getattr(self, f.name))


@dataclass(frozen=True)
class ModelConfig(Section):
    """Which base model to load and how to adapt it.

    ``name`` is a Hugging Face id, a local path, or ``qwen2-tiny`` (the embedded
    model that is built locally, so everything runs offline on a CPU).
    """

    name: str = setting("qwen2-tiny", "model.name", "HF id, local path or .gguf file of a "
                        "causal LM; embedded (offline): qwen2-tiny (built locally), "
                        "smollm2-135m (SmolLM2-135M-Instruct)")
    source: str = setting("auto", "model.source", "where model.name comes from: auto (embedded "
                          "name, .gguf file, local directory, else huggingface) | huggingface | "
                          "modelscope | local | gguf", choices=MODEL_SOURCES)
    revision: str = setting("", "model.revision", "hub branch, tag or commit (\"\" = the hub's "
                            "default)")
    quantization: int = setting(4, "model.quantization", "4 = nf4 (QLoRA), 8 = int8, 0 = none",
                                choices=QUANTIZATION_BITS)
    lora_r: int = setting(8, "model.lora-r", "LoRA rank", ge=1, le=1024)
    lora_alpha: int = setting(16, "model.lora-alpha", "LoRA scaling numerator "
                              "(scale = alpha / r)", ge=1, le=65536)
    lora_dropout: float = setting(0.0, "model.lora-dropout", "dropout on the LoRA path",
                                  ge=0.0, lt=1.0)
    lora_variant: str = setting("standard", "model.lora-variant", "standard (train A and B) "
                                "or ffa (FFA-LoRA: A frozen at one seeded initialisation on "
                                "every node, only B trained and sent: exact linear merges, "
                                "about half the bytes)", choices=LORA_VARIANTS)
    target_modules: tuple[str, ...] = setting(QWEN_LINEAR_MODULES, "model.target-modules",
                                              "LoRA targets: by default every linear "
                                              "projection of Qwen (and Llama) layers")
    gradient_checkpointing: bool = setting(False, "model.gradient-checkpointing",
                                           "trade compute for memory on large models (GPU)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.name.strip():
            raise ConfigError("run config key 'model.name' must be a model id or path, got ''")
        if not self.target_modules:
            raise ConfigError("run config key 'model.target-modules' must be a non-empty "
                              "comma-separated list of module names, got ''")


@dataclass(frozen=True)
class TrainConfig(Section):
    """Local training settings sent with every train instruction."""

    sync_interval: float = setting(10.0, "train.sync-interval", "seconds of local training per "
                                   "update (the original FedMoE upload period)", gt=0, le=DAY)
    max_steps: int = setting(0, "train.max-steps", "step cap per update (0 = only the time "
                             "budget)", ge=0, le=10**7)
    learning_rate: float = setting(0.003, "train.learning-rate", "AdamW learning rate of the "
                                   "LoRA weights", gt=0, lt=1)
    batch_size: int = setting(8, "train.batch-size", "examples per optimizer step", ge=1, le=4096)
    max_seq_len: int = setting(192, "train.max-seq-len", "tokens per example (prompt + answer), "
                               "answer tail truncated", ge=16, le=131_072)
    prompt_loss_weight: float = setting(0.1, "train.prompt-loss-weight", "weight of prompt "
                                        "tokens in the training loss (answer tokens: 1); lets "
                                        "the loss router score prompts",
                                        ge=0, le=1)
    torch_threads: int = setting(1, "train.torch-threads", "torch threads per node "
                                 "(0 = torch default)", ge=0, le=1024)
    overlap: bool = setting(False, "train.overlap", "keep training while the update travels "
                            "(deployed SuperNodes with warm workers, or a simulation: one "
                            "training actor per node; docs/deployment.md)")
    overlap_rule: str = setting("carry", "train.overlap-rule", "overlap: the newest weights "
                                "plus what the node learned while its update travelled "
                                "(carry), or the newest weights alone (replace)",
                                choices=("carry", "replace"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.overlap and self.max_steps:
            raise ConfigError("run config key 'train.overlap' paces updates by "
                              "train.sync-interval; set train.max-steps = 0")


@dataclass(frozen=True)
class DataConfig(Section):
    """How nodes read and split their JSONL files."""

    on_error: str = setting("fail", "data.on-error", "bad JSONL line: fail (error names "
                            "file:line) or skip (log and count)", choices=ON_ERROR)
    eval_fraction: float = setting(0.1, "data.eval-fraction", "held-out share, split by a hash "
                                   "of the prompt", gt=0, lt=1)
    max_eval_examples: int = setting(48, "data.max-eval-examples", "cap on eval examples per "
                                     "domain (evaluation cost)", ge=1, le=10**6)


@dataclass(frozen=True)
class StrategyConfig(Section):
    """Which aggregation strategy runs, and the checks every update passes before it.

    Each strategy declares its own parameters (``strategy.<name>.<key>``, see
    ``strategies/``); they arrive here unparsed in ``params`` and are parsed by
    the strategy's own section when the server builds it
    (:func:`fedmoe_flwr.server.policy.build_strategy`), so this module never
    needs to know the strategies.
    """

    name: str = setting("fedasync", "strategy.name", "aggregation strategy: fedasync | fedbuff "
                        "| fedavg | flower-fedavg (the registry of strategies/ owns the names)")
    max_staleness: int = setting(20, "strategy.max-staleness", "updates staler than this "
                                 "(in versions) are dropped", ge=0, le=10**6)
    max_update_norm: float = setting(10.0, "strategy.max-update-norm", "reject an update whose "
                                     "change is over this many times the expert's L2 norm "
                                     "(0 = no bound)", ge=0, le=1e6)
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"run config key 'strategy.name' must be a strategy name, got "
                              f"{self.name!r}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


@dataclass(frozen=True)
class RobustConfig(Section):
    """Robust checks of every update against its expert, and the quarantine of liars."""

    enabled: bool = setting(True, "robust.enabled", "refuse updates that erase the expert, "
                            "point against its recent movement, stand out in norm or replay "
                            "(docs/safety.md)")
    min_keep: float = setting(0.5, "robust.min-keep", "refuse an update that leaves less than "
                              "this share of the expert's norm (an all-zero update leaves 0)",
                              ge=0, le=1)
    min_cosine: float = setting(-0.4, "robust.min-cosine", "refuse a change whose cosine "
                                "with the expert's recent movement is below this (honest "
                                "changes measured down to -0.17, and -0.29 just after a "
                                "resume; docs/safety.md)", ge=-1, le=1)
    max_norm_ratio: float = setting(3.0, "robust.max-norm-ratio", "refuse a change over this "
                                    "many times the median norm of recent accepted changes "
                                    "(honest changes measured 1.15 at most)", gt=1, le=1e6)
    warmup: int = setting(3, "robust.warmup", "accepted changes of an expert before the "
                          "direction and norm checks apply", ge=1, le=10**6)
    strikes: int = setting(3, "robust.strikes", "robust refusals after which a node is "
                           "quarantined for the rest of the run", ge=1, le=10**6)


@dataclass(frozen=True)
class GatewayConfig(Section):
    """How the gateway adapter is built from the experts."""

    method: str = setting("cat", "gateway.method", "gateway merge: cat, svd, ties, dare-ties "
                          "(exact, in weight-update space), weighted-average or sum (of A and B)",
                          choices=GATEWAY_METHODS)
    weighting: str = setting("examples", "gateway.weighting", "expert weights in the merge: "
                             "examples (seen per expert) or equal", choices=GATEWAY_WEIGHTINGS)
    rank: int = setting(0, "gateway.rank", "svd / ties / dare-ties: gateway LoRA rank "
                        "(0 = experts' rank)", ge=0, le=4096)
    density: float = setting(0.5, "gateway.density", "ties / dare-ties: fraction of each "
                             "expert's update kept", gt=0, le=1)
    refresh_every: float = setting(10.0, "gateway.refresh-every", "seconds between gateway "
                                   "rebuilds while experts change (0 = after every update); "
                                   "always rebuilt before evaluations and at the end",
                                   ge=0, le=DAY)


@dataclass(frozen=True)
class RouterConfig(Section):
    """How ``fedmoe ask`` picks experts (and what nodes send for it at registration)."""

    method: str = setting("ngrams", "router.method", "ngrams (character n-gram naive Bayes), "
                          "centroid (nearest mean prompt embedding), loss (lowest prompt loss) "
                          "or keywords (regex rules)", choices_of=router_methods)
    top_k: int = setting(2, "router.top-k", "at most this many experts per question",
                         ge=1, le=64)
    threshold: float = setting(0.25, "router.threshold", "an expert is used when its routing "
                               "weight (softmax of scores) is at least this", gt=0, le=1)
    temperature: float = setting(0.25, "router.temperature", "softmax temperature of the "
                                 "routing scores", gt=0, le=100)
    combine: str = setting("mix", "router.combine", "several experts: mix (one weighted cat "
                           "adapter) or stitch (one answer each, joined)", choices=ROUTER_COMBINE)
    centroid_examples: int = setting(256, "router.centroid-examples", "training prompts each "
                                     "node averages into its centroid (0 = none)",
                                     ge=0, le=100_000)
    candidate_tokens: int = setting(0, "router.candidate-tokens", "loss router: 0 = score the "
                                    "prompt; N = each expert's own N-token draft",
                                    ge=0, le=4096)
    ngram_buckets: int = setting(32768, "router.ngram-buckets", "ngrams router: hashed "
                                 "character n-gram counts of its training prompts each node "
                                 "sends (0 = none)", ge=0, le=1 << 22)
    embedding_layer: int = setting(0, "router.embedding-layer", "centroid embedding: "
                                   "hidden_states index (0 = token embeddings, -1 = last)",
                                   ge=-128, le=128)
    keywords: str = setting("", "router.keywords", "keywords router rules "
                            "(\"\" = built-in rules)")


@dataclass(frozen=True)
class RunSettings(Section):
    """Server-side run control: specialties, stop conditions, outputs."""

    specialties: tuple[str, ...] = setting(("python_expert", "sql_expert", "docs_expert"),
                                           "run.specialties", "experts this run trains",
                                           name=True)
    allow_new_specialties: bool = setting(False, "run.allow-new-specialties", "a node with "
                                          "another valid specialty name creates its expert "
                                          "mid-run (up to run.max-experts)")
    max_experts: int = setting(16, "run.max-experts", "cap on the number of experts, "
                               "configured and new", ge=1, le=1000)
    duration: float = setting(120.0, "run.duration", "seconds of training after registration "
                              "and the initial evaluation", gt=0, le=30 * DAY)
    max_updates: int = setting(0, "run.max-updates", "stop after this many merged updates "
                               "(0 = only run.duration)", ge=0, le=10**9)
    output_dir: str = setting("outputs", "run.output-dir", "run directories go here (relative "
                              "to where the SuperLink started)")
    name: str = setting("", "run.name", "run directory name (\"\" = <timestamp>-<strategy>)")
    seed: int = setting(42, "run.seed", "seeds every node's batch order", ge=0, le=2**32 - 1)
    register_timeout: float = setting(180.0, "run.register-timeout", "seconds to wait for at "
                                      "least one node per specialty", gt=0, le=DAY)
    message_ttl: float = setting(900.0, "run.message-ttl", "seconds a message and its reply "
                                 "stay valid", ge=10, le=DAY)
    drain_timeout: float = setting(60.0, "run.drain-timeout", "at stop, seconds to wait for "
                                   "updates in flight", ge=0, le=DAY)
    rejoin_backoff: float = setting(30.0, "run.rejoin-backoff", "seconds before a node that "
                                    "sent an error reply is asked to register again",
                                    ge=0, le=DAY)
    keep_versions: int = setting(2, "run.keep-versions", "checkpointed versions kept per "
                                 "adapter (0 = all, for benchmarks)", ge=0, le=10**6)
    resume_from: str = setting("", "run.resume-from", "a run directory to continue from")
    eval_every: float = setting(0.0, "eval.every-s", "also evaluate every N seconds "
                                "(0 = start and end only)", ge=0, le=DAY)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.specialties:
            raise ConfigError("run config key 'run.specialties' must be a non-empty "
                              "comma-separated list, got ''")
        if len(set(self.specialties)) != len(self.specialties):
            raise ConfigError(f"run config key 'run.specialties' must be a list without "
                              f"duplicates, got {self.specialties!r}")
        if self.name:
            check_name(self.name, "run config key 'run.name'")
        if len(self.specialties) > self.max_experts:
            raise ConfigError(f"run config key 'run.max-experts' ({self.max_experts}) is below "
                              f"the {len(self.specialties)} specialties of run.specialties")


@dataclass(frozen=True)
class CommConfig(Section):
    """What travels: full float32 weights, or compressed deltas."""

    compression: str = setting("none", "comm.compression", "none: float32 weights both ways; "
                               "fp16 / int8: the node sends its delta in fp16 or int8 (per-row "
                               "scales, error feedback), the server sends fp16 weights",
                               choices=COMPRESSIONS)


@dataclass(frozen=True)
class PrivacyConfig(Section):
    """Differential privacy of the updates: clip each delta, add Gaussian noise (local/central)."""

    clip: float = setting(0.0, "privacy.clip", "L2 bound on each update's delta (0 = no "
                          "clipping and no noise)", ge=0, le=1e6)
    noise_multiplier: float = setting(0.0, "privacy.noise-multiplier", "Gaussian noise std "
                                      "= multiplier x clip, added by the node", ge=0, le=1e4)
    delta: float = setting(1e-5, "privacy.delta", "the delta of the (epsilon, delta) reported "
                           "per node and expert", gt=0, lt=1)
    max_epsilon: float = setting(0.0, "privacy.max-epsilon", "stop training a node once its "
                                 "next update would exceed this epsilon (0 = no budget)",
                                 ge=0, le=1e6)
    mode: str = setting("local", "privacy.mode", "local: each node noises its own update "
                        "(trusts nobody); central: nodes clip, the server (trusted) adds the "
                        "noise once to the sum of each buffered step (fedbuff, fedavg)",
                        choices=("local", "central"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.noise_multiplier and not self.clip:
            raise ConfigError("run config key 'privacy.noise-multiplier' needs "
                              "'privacy.clip' > 0: noise is scaled by the clipping bound")
        if self.max_epsilon and not self.noise_multiplier:
            raise ConfigError("run config key 'privacy.max-epsilon' needs "
                              "'privacy.noise-multiplier' > 0: without noise no epsilon is "
                              "finite")

    @property
    def enabled(self) -> bool:
        """Whether updates are clipped (and noised)."""
        return self.clip > 0


@dataclass(frozen=True)
class SimulationConfig(Section):
    """Simulation only: which specialty, data file and speed each partition gets."""

    specialties: tuple[str, ...] = setting(("python_expert", "sql_expert", "docs_expert"),
                                           "sim.specialties", "partition i trains entry i mod "
                                           "len", name=True)
    data_paths: tuple[str, ...] = setting(("data/python.jsonl", "data/sql.jsonl",
                                           "data/docs.jsonl"), "sim.data-paths",
                                          "one file per entry above")
    speed_factors: tuple[float, ...] = setting((1.0, 1.0, 1.0, 2.0), "sim.speed-factors",
                                               "per partition; 4 = four times slower (a "
                                               "straggler); the default's partition 3 is a "
                                               "second, slower python node",
                                               ge=1.0, le=1000.0)
    seconds_per_token: float = setting(0.0, "sim.seconds-per-token", "simulated compute "
                                       "cost: every step lasts speed factor x its padded "
                                       "tokens x this (0 = speed factor x its CPU time)",
                                       ge=0.0, le=1.0)
    join_delays: tuple[float, ...] = setting((), "sim.join-delays", "per partition: seconds "
                                             "before it answers its first registration query "
                                             "(joins mid-run); \"\" = all at once",
                                             ge=0.0, le=DAY)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.specialties) != len(self.data_paths):
            raise ConfigError(f"run config key 'sim.data-paths' must have one path per entry "
                              f"of sim.specialties ({len(self.specialties)}), got "
                              f"{self.data_paths!r}")


@dataclass(frozen=True)
class AppConfig:
    """Everything both apps need, parsed from one run config."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    run: RunSettings = field(default_factory=RunSettings)
    comm: CommConfig = field(default_factory=CommConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    sim: SimulationConfig = field(default_factory=SimulationConfig)


def split_list(value: str) -> tuple[str, ...]:
    """Split a comma-separated run-config string (run config holds scalars only)."""
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


def _coerce(key: str, kind: Any, value: Any) -> Any:
    """Turn one raw run-config value into the field's type, naming the key on failure."""
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        parts = split_list(value) if isinstance(value, str) else None
        if parts is None:
            raise ConfigError(f"run config key '{key}' must be a comma-separated string, got "
                              f"{value!r} ({type(value).__name__})")
        try:
            return tuple(item(p) for p in parts)
        except ValueError:
            raise ConfigError(f"run config key '{key}' must be comma-separated "
                              f"{item.__name__} values, got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"run config key '{key}' must be {kind.__name__}, got {value!r} "
                          f"({type(value).__name__})")
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def section_fields(cls: type) -> list[Any]:
    """The declared run-config keys of one section (fields with a ``key``)."""
    return [f for f in fields(cls) if "key" in f.metadata]


def config_fields() -> Iterator[tuple[str, type, Any]]:
    """Every key of the core sections as ``(section attribute, section class, field)``.

    Strategy parameters are declared by each strategy (``Strategy.Params``).
    """
    hints = _hints(AppConfig)
    for section in fields(AppConfig):
        cls = hints[section.name]
        for f in section_fields(cls):
            yield section.name, cls, f


def field_default(f: Any) -> Any:
    """A field's default, spelt as ``pyproject.toml`` spells it (lists comma-joined)."""
    value = f.default_factory() if callable(f.default_factory) else f.default
    if isinstance(value, tuple):
        value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return value


def default_run_config() -> dict[str, Any]:
    """The flat run config of the core defaults, spelt as ``pyproject.toml`` spells it."""
    return {f.metadata["key"]: field_default(f) for _, _, f in config_fields()}


def is_strategy_param(key: str) -> bool:
    """``strategy.<name>.<key>``: a strategy's own parameter (parsed by the strategy)."""
    return key.startswith("strategy.") and key.count(".") >= 2


def parse_section(cls: type, raw: Mapping[str, Any]) -> Any:
    """One section from the flat run config: its declared keys coerced, ranges checked."""
    values = {f.name: _coerce(f.metadata["key"], _hints(cls)[f.name], raw[f.metadata["key"]])
              for f in section_fields(cls) if f.metadata["key"] in raw}
    return cls(**values)


def parse_run_config(raw: Mapping[str, Any]) -> AppConfig:
    """Parse and validate Flower's flat run config.

    Missing keys take the declared defaults, so tests and the Python API can
    pass only what they change.  Unknown keys are rejected: a misspelt key
    that is silently ignored is the most expensive kind of config bug.
    Strategy parameters (``strategy.<name>.<key>``) are kept for the strategy,
    which checks them when the server builds it.
    """
    keys = {f.metadata["key"] for _, _, f in config_fields()}
    unknown = sorted(k for k in set(raw) - keys if not is_strategy_param(k))
    if unknown:
        raise ConfigError(f"unknown run config key(s) {unknown}; valid keys: {sorted(keys)}")
    hints = _hints(AppConfig)
    sections = {s.name: parse_section(hints[s.name], raw) for s in fields(AppConfig)}
    params = {k: v for k, v in raw.items() if is_strategy_param(k)}
    sections["strategy"] = replace(sections["strategy"], params=params)
    return AppConfig(**sections)
