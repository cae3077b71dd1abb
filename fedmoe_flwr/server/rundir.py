"""Reading a run directory: the experts and gateway a run checkpointed.

The writer (:mod:`fedmoe_flwr.server.artifacts`) swaps each adapter's symlink
atomically, so a reader that resolves the link once and reads from the
immutable version directory it points to always sees one complete
checkpoint, even while the run is still writing newer ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedmoe_flwr.contract import GATEWAY
from fedmoe_flwr.server.artifacts import load_adapter_weights
from fedmoe_flwr.weights import Weights, weights_checksum

DEFAULT_RUN_DIR = Path("outputs") / "latest"


class RunDirError(ValueError):
    """A run directory, or an adapter in it, cannot be used as asked."""


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
        """The LoRA matrices, keyed by PEFT saved-adapter keys, checked against meta.json."""
        file = self.path / "adapter_model.safetensors"
        try:
            weights = load_adapter_weights(self.path)
        except Exception as err:  # truncated or garbage file: safetensors raises many kinds
            raise RunDirError(f"{file} is damaged ({type(err).__name__}: {err})") from None
        want = self.meta.get("sha256")
        if want and weights_checksum(weights) != want:
            raise RunDirError(f"{file} does not match the checksum in meta.json; the "
                              f"checkpoint is damaged")
        return weights


class RunView:
    """Read-only view of a run directory (finished or still running)."""

    def __init__(self, path: str | Path | None = None) -> None:
        given = Path(path) if path else DEFAULT_RUN_DIR
        if not given.exists():
            hint = ("start a run first, or pass RUN_DIR" if not path
                    else "check the path (run directories are under run.output-dir)")
            raise RunDirError(f"run directory {given} does not exist; {hint}")
        self.root = given.resolve()
        if not self._links():
            raise RunDirError(f"{self.root} has no checkpoint yet (no experts/<specialty>/ or "
                              f"gateway/ adapter); is it a run directory, and has the run "
                              f"registered its nodes?")

    def _links(self) -> dict[str, tuple[str, Path]]:
        links = {}
        experts = self.root / "experts"
        if experts.is_dir():
            for link in sorted(experts.iterdir()):
                if not link.name.startswith(".") and (link / "meta.json").exists():
                    links[link.name] = ("expert", link)
        if (self.root / GATEWAY / "meta.json").exists():
            links[GATEWAY] = ("gateway", self.root / GATEWAY)
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
            path = link.resolve()
            try:
                meta = _json(path / "meta.json")
                config = _json(path / "adapter_config.json")
                return AdapterInfo(name, kind, path, self.root, meta, config)
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


def _json(path: Path) -> dict[str, Any]:
    """A JSON object from a run-directory file; a damaged file is a one-line error."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path} is damaged ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict):
        raise RunDirError(f"{path} is damaged (a JSON object was expected)")
    return obj
