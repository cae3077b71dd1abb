"""Exporting an expert or the gateway in the formats serving tools load.

- ``peft``: a standard adapter directory (``adapter_config.json`` +
  ``adapter_model.safetensors``), for ``PeftModel.from_pretrained``, vLLM's
  LoRA support, TGI, llama.cpp's converter, ...
- ``npz``: one array per LoRA matrix, for numpy users and the original
  FedMoE tool.  Keys (the scheme is a contract)::

      <PEFT saved-adapter key>   e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
                                 float32, lora_A (r, in) and lora_B (out, r)
      version                    int64 scalar: the checkpoint's version
      lora_r, lora_alpha         int64 scalars: delta W = (lora_alpha / lora_r) * B @ A
      adapter, base_model        0-d unicode arrays: the adapter's name and base model

- ``merged``: the base model with the adapter merged into its weights
  (PEFT's ``merge_and_unload``) in 16-bit, saved with its tokenizer, so
  ``AutoModelForCausalLM.from_pretrained`` and engines without LoRA support
  serve it directly.

Every export is written beside its destination and renamed into place, so an
interrupted export never leaves a half-written adapter behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fedmoe_flwr.server.rundir import AdapterInfo, RunDirError
from fedmoe_flwr.weights import Weights

FORMATS = ("peft", "npz", "merged", "vllm", "gguf")
RUN_FORMATS = ("vllm", "gguf")  # every adapter of the run at once
MERGED_DTYPES = ("bfloat16", "float16", "float32")
NPZ_META_KEYS = ("version", "lora_r", "lora_alpha", "adapter", "base_model")


MARKER = ".fedmoe-export"  # in every exported directory: what --force may replace


def check_destination(out: Path, run_root: Path, force: bool) -> Path:
    """Refuse a destination an export must never write, and, without --force, any that exists.

    ``--force`` replaces only what an earlier export wrote (a directory with the
    marker file, or an ``.npz`` file holding an export's keys): never the run
    being exported or anything containing it, the working directory or one of
    its parents, or an empty path.
    """
    if not str(out).strip():
        raise RunDirError("--out is empty; name the file or directory to write")
    target = out.expanduser().resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise RunDirError(f"--out {out} is the working directory or one of its parents; "
                          f"name a new file or directory")
    if target == run_root or run_root.is_relative_to(target) or target.is_relative_to(run_root):
        raise RunDirError(f"--out {out} overlaps the run directory {run_root}; export outside it")
    if out.exists() or out.is_symlink():
        if not force:
            raise RunDirError(f"{out} exists; choose another --out or pass --force to replace "
                              f"an earlier export")
        if not _is_export(out):
            raise RunDirError(f"{out} exists and is not an earlier export (no {MARKER} marker, "
                              f"not an exported .npz); --force replaces only exports")
    return target


def _is_export(path: Path) -> bool:
    if path.is_symlink():
        return False
    if path.is_dir():
        return (path / MARKER).is_file()
    try:
        with np.load(path) as data:
            return all(k in data.files for k in NPZ_META_KEYS)
    except Exception:  # not an npz at all
        return False


def _staging(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def _publish(tmp: Path, out: Path) -> None:
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)
    elif out.exists() or out.is_symlink():
        out.unlink()
    os.replace(tmp, out)


def export_adapter(info: AdapterInfo, fmt: str, out: Path, *, force: bool = False,
                   dtype: str = "bfloat16") -> Path:
    """Write ``info``'s checkpoint to ``out`` in format ``fmt``; returns ``out``."""
    if fmt not in FORMATS:
        raise RunDirError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "merged" and dtype not in MERGED_DTYPES:
        raise RunDirError(f"unknown dtype {dtype!r}; valid: {', '.join(MERGED_DTYPES)}")
    out = check_destination(out, info.run_root, force)
    info.weights()  # verifies the checkpoint (readable, checksum) before anything is written
    try:
        tmp = _staging(out)
    except OSError as err:
        raise RunDirError(f"cannot write --out {out}: {err.strerror or err}") from None
    try:
        if fmt == "peft":
            for name in ("adapter_config.json", "adapter_model.safetensors", "meta.json"):
                shutil.copy2(info.path / name, tmp / name)
            (tmp / MARKER).write_text(f"{info.name} v{info.version}\n")
        elif fmt == "npz":
            save_npz(tmp / "adapter.npz", info)
            tmp = _single_file(tmp, "adapter.npz")
        else:
            _save_merged(info, tmp, dtype)
            (tmp / MARKER).write_text(f"{info.name} v{info.version} merged\n")
        _publish(tmp, out)
    except OSError as err:
        _discard(tmp)
        raise RunDirError(f"cannot write --out {out}: {err.strerror or err}") from None
    except BaseException:
        _discard(tmp)
        raise
    return out


def _discard(tmp: Path) -> None:
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


def export_run(run: Any, fmt: str, out: Path, *, force: bool = False) -> Path:
    """Every adapter of ``run`` in a serving engine's layout (``vllm`` or ``gguf``)."""
    from fedmoe_flwr.tools.serving_exports import export_gguf, export_vllm

    out = check_destination(out, run.root, force)
    try:
        tmp = _staging(out)
    except OSError as err:
        raise RunDirError(f"cannot write --out {out}: {err.strerror or err}") from None
    try:
        (export_vllm if fmt == "vllm" else export_gguf)(run, tmp, out)
        (tmp / MARKER).write_text(f"{run.root.name} {fmt}\n")
        _publish(tmp, out)
    except OSError as err:
        _discard(tmp)
        raise RunDirError(f"cannot write --out {out}: {err.strerror or err}") from None
    except BaseException:
        _discard(tmp)
        raise
    return out


def _single_file(tmp_dir: Path, name: str) -> Path:
    # npz is one file: move it out of the staging directory, still beside the destination.
    fd, tmp_file = tempfile.mkstemp(prefix=".export.", suffix=".npz", dir=tmp_dir.parent)
    os.close(fd)
    os.replace(tmp_dir / name, tmp_file)
    tmp_dir.rmdir()
    return Path(tmp_file)


def save_npz(path: Path, info: AdapterInfo) -> None:
    """One array per LoRA matrix plus the metadata keys of the module docstring."""
    arrays: dict[str, np.ndarray] = {k: v.astype(np.float32) for k, v in info.weights().items()}
    arrays.update(version=np.int64(info.version), lora_r=np.int64(info.config["r"]),
                  lora_alpha=np.int64(info.config["lora_alpha"]), adapter=np.str_(info.name),
                  base_model=np.str_(info.config.get("base_model_name_or_path", "")))
    with path.open("wb") as fh:
        np.savez(fh, **arrays)


def load_npz(path: str | Path) -> tuple[Weights, dict[str, object]]:
    """Read an ``npz`` export back: (LoRA weights, metadata)."""
    with np.load(path) as data:
        meta = {k: data[k].item() for k in NPZ_META_KEYS if k in data}
        weights = {k: data[k] for k in data.files if k not in NPZ_META_KEYS}
    return weights, meta


def _save_merged(info: AdapterInfo, out: Path, dtype: str) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fedmoe_flwr.config import ModelConfig
    from fedmoe_flwr.node.sources import resolve_model_path

    base_name = info.config.get("base_model_name_or_path") or ""
    if not base_name:
        raise RunDirError(f"{info.path}/adapter_config.json names no base model")
    try:
        base_path = resolve_model_path(ModelConfig(name=base_name))
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as err:  # not here and not downloadable (not --out's fault)
        raise RunDirError(f"{info.path / 'adapter_config.json'}: base_model_name_or_path "
                          f"{base_name!r} cannot be loaded ({type(err).__name__}: "
                          f"{' '.join(str(err).split())[:120]})") from None
    merged = PeftModel.from_pretrained(base, str(info.path)).merge_and_unload()
    bad = [k for k, t in merged.state_dict().items()
           if torch.is_floating_point(t) and not bool(torch.isfinite(t).all())]
    if bad:  # e.g. a huge lora_alpha: the checksum covers the weights, not the config
        raise RunDirError(f"merging {info.path} into {base_name} gives NaN/Inf in {len(bad)} "
                          f"tensors (first {bad[0]}; check lora_alpha in adapter_config.json); "
                          f"nothing written")
    merged.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(base_path).save_pretrained(str(out))
