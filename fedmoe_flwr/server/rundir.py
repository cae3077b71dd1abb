"""Reading a run directory: the one checked reader every command goes through.

The writer (:mod:`fedmoe_flwr.server.artifacts`) swaps each adapter's symlink
atomically, so a reader that resolves the link once and reads from the
immutable version directory it points to always sees one complete
checkpoint, even while the run is still writing newer ones.  Where the writer
could not make symlinks it writes pointer files (``experts/<specialty>.ref``,
``gateway.ref``, ``latest.ref``) instead; :func:`follow` reads either form, and
every reader here goes through it.

Opening a :class:`RunView` checks the whole run first (every adapter's
``meta.json`` and ``adapter_config.json`` fields, its weights against the
checksum in ``meta.json``, for NaN/Inf and against the rank and modules its
config names, ``run_config.json``'s ``model.*`` against the adapters,
``router.json`` by registration's rules, and that every expert another file
names is there: :mod:`fedmoe_flwr.server.runchecks`), so a damaged, truncated
or altered file stops any command at once with one line naming the file and
field, before a model is loaded or anything is written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedmoe_flwr.contract import GATEWAY
from fedmoe_flwr.server import runchecks
from fedmoe_flwr.server.artifacts import POINTER_SUFFIX, load_adapter_weights, pointer_file
from fedmoe_flwr.server.runchecks import RunDirError
from fedmoe_flwr.weights import Weights, all_finite, weights_checksum

DEFAULT_RUN_DIR = Path("outputs") / "latest"
__all__ = ["DEFAULT_RUN_DIR", "AdapterInfo", "RunDirError", "RunView", "checkpoint_names",
           "follow", "read_checkpoint"]
_field, _whole = runchecks.field, runchecks.whole


def follow(link: Path) -> Path | None:
    """The directory ``link`` stands for: through a symlink, or through ``<link>.ref``.

    None when neither exists.  A pointer file must hold a relative path without
    ``..`` (what the writer puts there), so an edited one cannot send a reader
    outside the directory it lives in.
    """
    if link.exists():  # a symlink (or a real directory): the OS follows it
        return link.resolve()
    ref = pointer_file(link)
    if link.is_symlink() or not ref.is_file():
        return None  # a dangling symlink, or nothing at all
    try:
        target = ref.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise RunDirError(f"{ref} is damaged ({type(err).__name__})") from None
    parts = Path(target).parts
    if not target or Path(target).is_absolute() or ".." in parts or "\\" in target:
        raise RunDirError(f"{ref} is damaged: it must hold a relative path inside "
                          f"{ref.parent}, got {target[:60]!r}")
    return (link.parent / target).resolve()


def checkpoint_names(directory: Path) -> list[str]:
    """Checkpoint names in ``directory``: links or directories, and ``<name>.ref`` pointers."""
    names = set()
    for entry in directory.iterdir():
        if entry.name.startswith("."):
            continue  # the writer's versions and temporary directories
        if entry.name.endswith(POINTER_SUFFIX) and entry.is_file():
            names.add(entry.name[:-len(POINTER_SUFFIX)])
        else:
            names.add(entry.name)
    return sorted(names)


def _check_meta(path: Path, meta: dict[str, Any]) -> None:
    _field(path, meta, "version", _whole, "a whole number >= 0")
    _field(path, meta, "sha256", lambda v: isinstance(v, str) and len(v) == 64
           and all(c in "0123456789abcdef" for c in v), "a sha256 hex digest")
    runchecks.check_meta_fields(path, meta)


def _check_config(path: Path, config: dict[str, Any]) -> None:
    _field(path, config, "peft_type", lambda v: v == "LORA", '"LORA"')
    _field(path, config, "r", lambda v: _whole(v) and v >= 1, "a whole number >= 1")
    _field(path, config, "lora_alpha", lambda v: runchecks.number(v) and math.isfinite(v)
           and v > 0, "a positive finite number")
    _field(path, config, "target_modules", lambda v: isinstance(v, list) and v and all(
        isinstance(m, str) for m in v), "a non-empty list of module names")


@dataclass(frozen=True)
class AdapterInfo:
    """One checkpointed adapter: where its files are and what its meta says."""

    name: str
    kind: str  # "expert" | "gateway"
    path: Path  # the resolved, immutable version directory
    run_root: Path
    meta: dict[str, Any]
    config: dict[str, Any]  # adapter_config.json

    @property
    def size_bytes(self) -> int:
        """Bytes of the adapter weights file (what a serving engine loads)."""
        return (self.path / "adapter_model.safetensors").stat().st_size

    @property
    def version(self) -> int:
        """The checkpoint's version (expert merges or gateway rebuilds)."""
        return int(self.meta.get("version", 0))

    def weights(self) -> Weights:
        """The LoRA matrices, keyed by PEFT saved-adapter keys, checked against meta.json.

        Refused when the file is unreadable, differs from the checksum, or holds
        NaN/Inf (a checksum can match a file that was written with NaN in it).
        """
        file = self.path / "adapter_model.safetensors"
        try:
            weights = load_adapter_weights(self.path)
        except Exception as err:  # truncated or garbage file: safetensors raises many kinds
            raise RunDirError(f"{file} is damaged ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:120]})") from None
        if weights_checksum(weights) != self.meta["sha256"]:
            raise RunDirError(f"{file} does not match the checksum in meta.json; the "
                              f"checkpoint is damaged")
        if not all_finite(weights):
            raise RunDirError(f"{file} holds NaN or Inf; the checkpoint cannot be used")
        runchecks.check_weights_match(self.path, self.config, weights)
        return weights


class RunView:
    """Read-only view of a run directory (finished or still running)."""

    def __init__(self, path: str | Path | None = None, *, check: bool = True) -> None:
        given = Path(path) if path else DEFAULT_RUN_DIR
        root = follow(given)  # outputs/latest: a symlink or outputs/latest.ref
        if root is not None and root.exists() and not root.is_dir():
            raise RunDirError(f"{given} is a file, not a run directory (run directories are "
                              f"under run.output-dir)")
        if root is None or not root.is_dir():
            hint = ("start a run first, or pass RUN_DIR" if not path
                    else "check the path (run directories are under run.output-dir)")
            raise RunDirError(f"run directory {given} does not exist; {hint}")
        self.root = root
        if not self._links():
            raise RunDirError(f"{self.root} has no checkpoint yet (no experts/<specialty>/ or "
                              f"gateway/ adapter); is it a run directory, and has the run "
                              f"registered its nodes?")
        if check:
            self.check()

    def check(self) -> None:
        """Every file of the run as the commands will read it (see the module docstring)."""
        adapters = [self.adapter(name) for name in self.names()]
        for info in adapters:
            info.weights()
            if info.kind == "gateway":
                runchecks.check_gateway_meta(info)
        docs = {name: _json(self.root / name) for name in
                ("run_config.json", "router.json", "summary.json") if (self.root / name).exists()}
        if "run_config.json" in docs:
            runchecks.check_run_model(self.root / "run_config.json", docs["run_config.json"],
                                      adapters)
        if "router.json" in docs:
            runchecks.check_router(self.root / "router.json", docs["router.json"])
        if "summary.json" in docs:
            runchecks.check_summary(self.root / "summary.json", docs["summary.json"])
        gateway = next((a.meta for a in adapters if a.kind == "gateway"), None)
        named = runchecks.named_experts(self.root, docs.get("router.json"),
                                        docs.get("summary.json"), gateway)
        runchecks.check_experts_present(self.root, [a.name for a in adapters
                                                    if a.kind == "expert"], named,
                                        live="summary.json" not in docs)

    def _links(self) -> dict[str, tuple[str, Path]]:
        links = {}
        experts = self.root / "experts"
        if experts.is_dir():
            for name in checkpoint_names(experts):
                link = experts / name
                target = follow(link)
                if target is None or not (target / "meta.json").exists():
                    raise RunDirError(f"{link} has no meta.json: the checkpoint is damaged "
                                      f"(or not written by fedmoe)")
                links[name] = ("expert", link)
        gateway = self.root / GATEWAY
        if gateway.exists() or gateway.is_symlink() or pointer_file(gateway).is_file():
            target = follow(gateway)
            if target is None or not (target / "meta.json").exists():
                raise RunDirError(f"{gateway} has no meta.json: the checkpoint is damaged")
            links[GATEWAY] = ("gateway", gateway)
        return links

    def names(self) -> list[str]:
        """Adapter names: the specialties, then ``gateway``."""
        return list(self._links())

    def adapter(self, name: str) -> AdapterInfo:
        """Resolve one adapter's current checkpoint; unknown names list the valid ones."""
        links = self._links()
        if name not in links:
            raise RunDirError(f"no adapter {name!r} in {self.root}; valid: "
                              f"{', '.join(links) or 'none yet'}")
        kind, link = links[name]
        for _ in range(3):  # the writer may prune the version we resolved: resolve again
            path = follow(link)
            if path is None:
                continue
            try:
                return read_checkpoint(name, kind, path, self.root)
            except FileNotFoundError:
                continue
        raise RunDirError(f"{link} kept changing while being read; try again")

    def experts(self) -> list[AdapterInfo]:
        """Every expert's current checkpoint, by specialty."""
        return [self.adapter(n) for n, (kind, _) in self._links().items() if kind == "expert"]

    def summary(self) -> dict[str, Any] | None:
        """``summary.json`` once the run has finished, else None."""
        path = self.root / "summary.json"
        return _json(path) if path.exists() else None

    def run_config(self) -> dict[str, Any]:
        """The run's flat run config (``run_config.json``; empty for a hand-made directory)."""
        path = self.root / "run_config.json"
        return _json(path) if path.exists() else {}


def read_checkpoint(name: str, kind: str, path: Path, run_root: Path) -> AdapterInfo:
    """One resolved version directory's meta and config, their fields checked.

    Raises FileNotFoundError when the directory (or a file of it) is gone: the
    writer pruned or re-saved that version, and a caller following a live run
    resolves the link again (only the weights are read lazily, by ``weights()``).
    """
    meta = _json(path / "meta.json")
    config = _json(path / "adapter_config.json")
    _check_meta(path / "meta.json", meta)
    _check_config(path / "adapter_config.json", config)
    return AdapterInfo(name, kind, path, run_root, meta, config)


def _json(path: Path) -> dict[str, Any]:
    """A JSON object from a run-directory file; a damaged file is a one-line error."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RecursionError) as err:
        raise RunDirError(f"{path} is damaged ({type(err).__name__}: "
                          f"{' '.join(str(err).split())[:120]})") from None
    if not isinstance(obj, dict):
        raise RunDirError(f"{path} is damaged (a JSON object was expected)")
    return obj
