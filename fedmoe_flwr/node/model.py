"""Base model loading (bitsandbytes 4/8-bit) and named LoRA adapters.

One code path for every model and device: ``from_pretrained`` with a
``BitsAndBytesConfig``, ``prepare_model_for_kbit_training``, then one PEFT
LoRA adapter per specialty, keyed by name (``adapter_name=specialty``) on a
single base model, never a copy of the model per specialty.  Only settings
differ between a GPU node (bf16 compute) and a CPU laptop (fp32 compute).
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import ModelConfig
from ..lora import lora_kwargs
from .gguf import SOURCE_FILE
from .sources import resolve_model_path

log = logging.getLogger(__name__)


class ModelError(ValueError):
    """The model or its LoRA configuration cannot be used as asked."""


@dataclass
class LoadedModel:
    """A quantised base model with its tokenizer and named LoRA adapters."""

    peft_model: Any  # peft.PeftModel
    tokenizer: Any
    device: torch.device
    fingerprint: str
    load_seconds: float


_CACHE: dict[tuple, LoadedModel] = {}  # per process; survives between messages in simulation


def pick_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it, fp32 elsewhere (CPU bf16 matmuls are slow and lossy)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def model_fingerprint(path: str) -> str:
    """Identify the exact base weights, so nodes with different bases are refused.

    For local directories we hash ``config.json`` and, when small, the weights
    (qwen2-tiny is rebuilt on each node and must come out identical), plus the
    source GGUF's content hash for a converted checkpoint; for hub ids the id
    itself is all we have before download.
    """
    p = Path(path)
    if not p.is_dir():
        return path
    h = hashlib.sha256((p / "config.json").read_bytes() if (p / "config.json").exists() else b"")
    if (p / SOURCE_FILE).is_file():  # converted from GGUF: the GGUF's content hash
        h.update((p / SOURCE_FILE).read_bytes())
    for f in sorted(p.glob("*.safetensors")):
        h.update(f.name.encode())
        if f.stat().st_size < 64 * 2**20:
            h.update(f.read_bytes())
        else:
            h.update(str(f.stat().st_size).encode())
    return h.hexdigest()[:16]


def lora_config(cfg: ModelConfig, rank: int = 0, alpha: int = 0) -> Any:
    """The PEFT ``LoraConfig`` every node and the server agree on (see ``lora.py``)."""
    from peft import LoraConfig

    return LoraConfig(**lora_kwargs(cfg, rank, alpha))


def check_target_modules(model: torch.nn.Module, targets: tuple[str, ...]) -> None:
    """Fail loudly when a LoRA target matches nothing (PEFT would skip it silently)."""
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in leaf_names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if "Linear" in type(m).__name__})
        raise ModelError(f"LoRA target module(s) {missing} match no module of the model "
                         f"(model.target-modules); linear modules are: {linear}")


def _quantization_config(bits: int, dtype: torch.dtype) -> Any:
    from transformers import BitsAndBytesConfig

    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def _disable_cpu_repacking(model: torch.nn.Module) -> None:
    """Keep 4-bit CPU weights trainable after an eval-mode forward.

    bitsandbytes repacks CPU weights for AVX512-bf16 kernels on the first
    eval forward, after which a training forward fails with "a view of a leaf
    Variable ... in-place".  Turning the fast path off keeps one layout.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def load_base(cfg: ModelConfig, source: str | None = None) -> LoadedModel:
    """Load (or reuse) the quantised base model with PEFT wrapped around it.

    The first adapter is a placeholder named ``"_init"``; specialties get
    their own named adapters through :func:`ensure_adapter`.  ``source``
    overrides ``model.source`` for this node (see :mod:`.sources`).
    """
    device = pick_device()
    key = (cfg.name, source or cfg.source, cfg.revision, cfg.quantization, cfg.lora_r,
           cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules, cfg.gradient_checkpointing,
           device.type)
    if key in _CACHE:
        return _CACHE[key]
    _CACHE.clear()  # a long-lived worker keeps one base model in memory, not one per run
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    path = resolve_model_path(cfg, source)
    dtype = compute_dtype(device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, quantization_config=_quantization_config(cfg.quantization, dtype),
        device_map={"": device.index or 0} if device.type == "cuda" else None,
    )
    if cfg.quantization == 4:
        _disable_cpu_repacking(model)
    check_target_modules(model, cfg.target_modules)
    if cfg.quantization:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    peft_model = get_peft_model(model, lora_config(cfg), adapter_name="_init")
    loaded = LoadedModel(peft_model, tokenizer, device, model_fingerprint(path),
                         time.perf_counter() - t0)
    _CACHE[key] = loaded
    bits = f"{cfg.quantization}-bit" if cfg.quantization else "not quantized"
    log.info("loaded %s (%s) on %s in %.1fs", cfg.name, bits, device, loaded.load_seconds)
    return loaded


def ensure_adapter(loaded: LoadedModel, specialty: str, cfg: ModelConfig, rank: int = 0,
                   alpha: int = 0) -> None:
    """Create the specialty's named adapter if missing and make it the active one.

    The initial weights are seeded by the specialty name, so every node of a
    specialty proposes the same starting adapter at registration.  Under
    ``model.lora-variant = ffa`` every adapter of the run starts from one seed,
    so all nodes and the server hold the same frozen ``A``.
    """
    model = loaded.peft_model
    if specialty not in model.peft_config:
        seed = b"ffa-lora-A" if cfg.lora_variant == "ffa" else specialty.encode()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(zlib.crc32(seed))
            model.add_adapter(specialty, lora_config(cfg, rank, alpha))
    model.set_adapter(specialty)


def freeze_a(loaded: LoadedModel, adapter: str) -> int:
    """FFA-LoRA: stop training the adapter's ``A`` (``set_adapter`` makes it trainable).

    Returns how many matrices were frozen (one per LoRA layer).
    """
    frozen = 0
    for name, param in loaded.peft_model.named_parameters():
        if f".lora_A.{adapter}." in name:
            param.requires_grad_(False)
            frozen += 1
    return frozen
