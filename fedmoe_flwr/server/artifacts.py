"""The run directory: PEFT adapter directories, metrics and summary, written atomically.

Layout (the user-facing contract, documented in README.md and docs/)::

    <output-dir>/<run-name>/experts/<specialty>/   adapter_config.json,
                                                   adapter_model.safetensors, meta.json
    <output-dir>/<run-name>/gateway/               same, plus method and version in meta
    <output-dir>/<run-name>/metrics.jsonl          one JSON object per event
    <output-dir>/<run-name>/summary.json           per specialty: version, updates, losses
    <output-dir>/latest -> <run-name>

Each adapter directory is a symlink to an immutable versioned directory under
``.versions/``; a checkpoint is written in full beside it and the link is
swapped with one ``os.replace``.  A crash mid-write therefore leaves the
previous checkpoint in place and loadable, and a reader (``fedmoe experts``
during a run) never sees half an adapter.

Where the OS refuses symlinks (Windows without developer mode), or when
``FEDMOE_NO_SYMLINKS=1`` asks for it, each link is a *pointer file* instead:
``experts/<specialty>.ref``, ``gateway.ref`` and ``<output-dir>/latest.ref``
hold the target's path relative to their directory (``.versions/gateway-v000003``,
the run name), replaced atomically like the links.  Every reader goes through
:func:`fedmoe_flwr.server.rundir.follow`, which takes either.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fedmoe_flwr.config import ConfigError, ModelConfig
from fedmoe_flwr.events import EventLog
from fedmoe_flwr.lora import adapter_config
from fedmoe_flwr.weights import Weights, weights_checksum

STOP_FILE = "STOP"  # ``fedmoe stop`` writes it; the server loop ends the run gracefully
POINTER_SUFFIX = ".ref"  # symlink-free mode: ``<link>.ref`` names what ``<link>`` would point at
NO_SYMLINKS_ENV = "FEDMOE_NO_SYMLINKS"  # "1": pointer files even where symlinks work (tests)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file via a temp file in the same directory and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_symlink(target: str, link: Path) -> None:
    """Point ``link`` at ``target`` atomically (create a new link, then rename over)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{time.monotonic_ns()}")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def pointer_file(link: Path) -> Path:
    """Where the symlink-free mode records what ``link`` points at (``<link>.ref``)."""
    return link.with_name(link.name + POINTER_SUFFIX)


def symlinks_allowed(directory: Path) -> bool:
    """Whether links can be made in ``directory``: not when forced off, nor where the OS refuses.

    Probed once per run directory with a real ``os.symlink``, because Windows
    refuses it only at run time (no developer mode, no privilege), with an OSError.
    """
    if os.environ.get(NO_SYMLINKS_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    probe = directory / f".symlink-probe.{os.getpid()}.{time.monotonic_ns()}"
    try:
        os.symlink(".", probe)
    except (OSError, NotImplementedError):
        return False
    probe.unlink()
    return True


def point(link: Path, target: str, symlinks: bool) -> None:
    """Publish ``link -> target`` atomically: a symlink, or the pointer file ``<link>.ref``.

    Whichever form is written, a stale one of the other form is removed, so a
    reader never has two answers to choose from.
    """
    if symlinks:
        atomic_symlink(target, link)
        pointer_file(link).unlink(missing_ok=True)
        return
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise FileExistsError(f"{link} exists and is not a checkpoint link; refusing to "
                              f"shadow it with {pointer_file(link).name}")
    atomic_write_text(pointer_file(link), Path(target).as_posix() + "\n")


def write_peft_adapter(directory: Path, weights: Weights, model_cfg: ModelConfig,
                       base_model: str, rank: int = 0, alpha: int = 0) -> None:
    """Write a standard PEFT adapter directory (``adapter_config.json`` + safetensors).

    The safetensors keys are PEFT's saved-adapter keys, so
    ``PeftModel.from_pretrained(base, directory)`` loads it as it would an
    adapter saved by ``save_pretrained``.  ``rank`` / ``alpha`` override the
    run's LoRA settings for merged adapters (a ``cat`` gateway has rank n x r).
    """
    from safetensors.numpy import save_file

    config = adapter_config(model_cfg, base_model, rank, alpha)
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(weights.items())},
              str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})


def load_adapter_weights(directory: Path) -> Weights:
    """Read an adapter directory's weights back as numpy arrays."""
    from safetensors.numpy import load_file

    return dict(load_file(str(directory / "adapter_model.safetensors")))


class RunDirectory:
    """Writes one run's artifacts; the only code that touches the run directory."""

    def __init__(self, output_dir: str | Path, run_name: str, model_cfg: ModelConfig,
                 keep_versions: int = 2) -> None:
        self.root = Path(output_dir).expanduser().resolve() / run_name
        self.model_cfg = model_cfg
        self.keep_versions = keep_versions  # 0 = keep every version (benchmarks replay them)
        if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            raise ConfigError(f"run directory {self.root} exists already; a run never writes "
                              f"into another's: choose another run.name, or continue that run "
                              f"with run.resume-from")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create the run directory {self.root} (run.output-dir): "
                              f"{err.strerror}") from None
        self.events = EventLog(self.root / "metrics.jsonl")
        self.symlinks = symlinks_allowed(self.root)  # else pointer files (module docstring)
        latest = self.root.parent / "latest"
        if latest.is_symlink() or not latest.exists():
            point(latest, run_name, self.symlinks)

    def save_adapter(self, relpath: str, weights: Weights, version: int,
                     meta: dict[str, Any], rank: int = 0, alpha: int = 0) -> Path:
        """Checkpoint one adapter (``experts/<specialty>`` or ``gateway``) atomically."""
        link = self.root / relpath
        versions = link.parent / ".versions"
        versions.mkdir(parents=True, exist_ok=True)
        final = versions / f"{link.name}-v{version:06d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".{link.name}-tmp-", dir=versions))
        try:
            write_peft_adapter(tmp, weights, self.model_cfg, self.model_cfg.name, rank, alpha)
            meta = {**meta, "sha256": weights_checksum(weights),  # readers verify it
                    "lora_variant": self.model_cfg.lora_variant}
            atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=2, sort_keys=True))
            if final.exists():  # same version re-saved (e.g. eval losses added)
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if link.exists() and not link.is_symlink():
            raise FileExistsError(f"{link} exists and is not a checkpoint link; refusing to "
                                  f"overwrite it")
        point(link, os.path.relpath(final, link.parent), self.symlinks)
        if self.keep_versions:
            for old in sorted(versions.glob(f"{link.name}-v*"))[:-self.keep_versions]:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def stop_requested(self) -> bool:
        """Whether ``fedmoe stop`` asked this run to end (a ``STOP`` file in the run dir)."""
        return (self.root / STOP_FILE).exists()

    def write_json(self, name: str, obj: Any) -> Path:
        """Write a JSON artifact atomically."""
        path = self.root / name
        atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True,
                                           default=_json_default))
        return path

    def close(self) -> None:
        """Flush and close the metrics log; a served stop request is removed."""
        self.events.close()
        (self.root / STOP_FILE).unlink(missing_ok=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, set):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
