"""What the files of a run directory must hold, beyond being JSON objects.

:class:`~fedmoe_flwr.server.rundir.RunView` runs these checks when a command
opens a run, so every command (``experts``, ``export``, ``ask``, ``serve``,
resume ...) refuses the same damage with the same one line, naming the file
and the field, instead of a traceback later or, worse, a plausible but wrong
table, export or route.  Each check compares a file with what the writer
(:mod:`fedmoe_flwr.server.artifacts`, the server's registration rules) puts
there, or with another file of the run that must agree with it: a checksum
proves the weights are the ones written, so it is the small JSON beside them
(rank, alpha, target modules, routing statistics) that has to agree with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fedmoe_flwr.config import ConfigError, ModelConfig, parse_section
from fedmoe_flwr.contract import GLOBAL
from fedmoe_flwr.routing.centroids import router_doc_problem
from fedmoe_flwr.weights import Weights


class RunDirError(ValueError):
    """A run directory, or an adapter in it, cannot be used as asked."""


def field(path: Path, obj: dict[str, Any], key: str, ok: Callable[[Any], bool],
          want: str) -> Any:
    """``obj[key]`` if ``ok(value)``, else an error naming the file, the field and the value."""
    value = obj.get(key)
    if not ok(value):
        raise RunDirError(f"{path} is damaged: field {key!r} must be {want}, got "
                          f"{str(value)[:60]!r}")
    return value


def whole(v: Any) -> bool:
    """A JSON whole number >= 0 (not a bool, which JSON tells apart and Python does not)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def number(v: Any) -> bool:
    """A JSON number (int or float, not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _map(ok: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, dict) and all(isinstance(k, str) and ok(x)
                                                 for k, x in v.items())


_LOSSES = _map(lambda x: x is None or number(x))
# The optional fields of meta.json (ExpertState.meta, GatewayState.meta): absent is fine (a
# hand-made or older run), present they must have the type every reader formats them as.
OPTIONAL_META: dict[str, tuple[Callable[[Any], bool], str]] = {
    "specialty": (lambda v: isinstance(v, str), "a name"),
    "updates": (whole, "a whole number >= 0"),
    "examples_seen": (whole, "a whole number >= 0"),
    "nodes": (lambda v: isinstance(v, list) and all(isinstance(x, str) or whole(x)
                                                   for x in v), "a list of node ids"),
    "last_train_loss": (lambda v: v is None or number(v), "a number or null"),
    "eval_losses": (_LOSSES, "an object of losses (numbers or null) by adapter"),
    "staleness_histogram": (_map(whole), "an object of whole numbers"),
    "method": (lambda v: isinstance(v, str), "a merge method name"),
    "lora_r": (whole, "a whole number >= 0"),
    "lora_alpha": (lambda v: number(v) and math.isfinite(v) and v >= 0,
                   "a finite number >= 0"),
    "coefficients": (_map(lambda x: number(x) and math.isfinite(x)),
                     "an object of finite numbers by expert"),
    "expert_versions": (_map(whole), "an object of whole numbers by expert"),
}


def check_meta_fields(path: Path, meta: dict[str, Any]) -> None:
    """The optional fields of one ``meta.json``, where present (see :data:`OPTIONAL_META`)."""
    for key, (ok, want) in OPTIONAL_META.items():
        if key in meta:
            field(path, meta, key, ok, want)


def check_weights_match(directory: Path, config: dict[str, Any], weights: Weights) -> None:
    """``adapter_config.json`` must describe the (checksum-verified) weights beside it.

    A rank or module list that disagrees with the matrices makes PEFT fail
    with a size mismatch, or write an export whose config lies about them.
    """
    path = directory / "adapter_config.json"
    rank, targets = config["r"], set(config["target_modules"])
    for key, value in weights.items():
        side = "A" if key.endswith(".lora_A.weight") else "B" if key.endswith(
            ".lora_B.weight") else None
        if side is None:
            continue  # not a LoRA matrix (PEFT may save others): nothing to compare
        module = key.rsplit(".", 3)[-3]
        if module not in targets:
            raise RunDirError(f"{path} is damaged: field 'target_modules' {sorted(targets)} "
                              f"does not name module {module!r} of the weights ({key})")
        got = value.shape[0] if side == "A" else value.shape[-1]
        if value.ndim != 2 or got != rank:
            raise RunDirError(f"{path} is damaged: field 'r' is {rank}, but the weights hold "
                              f"rank-{got} matrices ({key} {tuple(value.shape)})")


def check_run_model(path: Path, flat: dict[str, Any], adapters: Iterable[Any]) -> None:
    """``run_config.json``'s ``model.*`` keys must agree with every adapter's config.

    Commands build the base model and the adapter slots from ``run_config.json``
    and load the checkpoints into them, so a disagreement is a size mismatch
    (rank), a wrong scaling (alpha) or another base model (name).  Only the
    ``model.*`` keys are parsed here: a run of an older release with a key
    since renamed elsewhere can still be listed.
    """
    try:
        model = parse_section(ModelConfig, {k: v for k, v in flat.items()
                                            if k.startswith("model.")})
    except (ConfigError, TypeError) as err:
        raise RunDirError(f"{path}: {err}") from None
    for info in adapters:
        theirs = info.path / "adapter_config.json"
        pairs = [("model.name", model.name, "base_model_name_or_path",
                  info.config.get("base_model_name_or_path", model.name)),
                 ("model.target-modules", sorted(model.target_modules), "target_modules",
                  sorted(info.config["target_modules"]))]
        if info.kind == "expert":  # the gateway's rank and alpha are the merge's own
            pairs += [("model.lora-r", model.lora_r, "r", info.config["r"]),
                      ("model.lora-alpha", model.lora_alpha, "lora_alpha",
                       info.config["lora_alpha"])]
        for key, mine, name, other in pairs:
            if mine != other:
                raise RunDirError(f"{path} and {theirs} disagree: {key} is {mine!r}, field "
                                  f"{name!r} is {other!r}; one of them is damaged")


def check_gateway_meta(info: Any) -> None:
    """The gateway's ``meta.json`` records the rank and alpha its config must have."""
    for key, name in (("lora_r", "r"), ("lora_alpha", "lora_alpha")):
        if key in info.meta and info.meta[key] != info.config[name]:
            raise RunDirError(f"{info.path / 'adapter_config.json'} is damaged: field {name!r} "
                              f"is {info.config[name]!r}, meta.json records {key} "
                              f"{info.meta[key]!r}")


def check_summary(path: Path, summary: dict[str, Any]) -> None:
    """The fields of ``summary.json`` that commands and resume read, where present."""
    if "updates" in summary:
        field(path, summary, "updates", whole, "a whole number >= 0")
    if "experts" in summary:
        field(path, summary, "experts", lambda v: isinstance(v, dict),
              "an object of expert meta by name")


def check_router(path: Path, doc: dict[str, Any]) -> None:
    """``router.json`` by the rules registration bounds a node's statistics with."""
    problem = router_doc_problem(doc)
    if problem:
        raise RunDirError(f"{path} is damaged: {problem}")


def named_experts(root: Path, router: dict[str, Any] | None, summary: dict[str, Any] | None,
                  gateway_meta: dict[str, Any] | None) -> dict[str, str]:
    """Experts other files of the run name, each with the first file naming it.

    Experts only ever join a run (``run.allow-new-specialties`` adds some
    mid-run), so every name here must have a checkpoint: a missing one was
    deleted, and routing or exporting without it would be silently wrong.
    """
    named: dict[str, str] = {}
    for file, names in (
            ("summary.json", (summary or {}).get("experts") or {}),
            ("gateway/meta.json", [*(gateway_meta or {}).get("coefficients", {}),
                                   *(gateway_meta or {}).get("expert_versions", {})]),
            ("router.json", [*(router or {}).get("specialties", {}),
                             *((router or {}).get("ngrams") or {}).get("specialties", {})])):
        for name in names if isinstance(names, (dict, list)) else ():
            named.setdefault(str(name), str(root / file))
    return named


def check_experts_present(root: Path, experts: list[str], named: dict[str, str],
                          live: bool) -> None:
    """Refuse a run without experts, or one missing an expert another file names."""
    if not experts:
        raise RunDirError(f"{root / 'experts'} holds no expert checkpoint: the run directory "
                          f"is damaged (every command needs its experts)")
    if experts == [GLOBAL]:
        return  # the peer baseline: one shared adapter, the router's names are specialties
    for name in sorted(set(named) - set(experts)):
        hint = ("; if the run is still registering its nodes, try again in a moment"
                if live else "")
        raise RunDirError(f"{root / 'experts' / name} is missing, but {named[name]} names "
                          f"it: the run directory is damaged{hint}")

