"""The LoRA settings nodes, server and artifacts agree on (no torch, no PEFT import).

Nodes build a PEFT ``LoraConfig(**lora_kwargs(cfg))``; the server writes the
same keys to ``adapter_config.json`` (what ``LoraConfig.save_pretrained``
writes, minus fields at their PEFT defaults, which ``from_pretrained`` fills
in), so it never imports torch; a test checks that PEFT reads the file back
as the config the nodes use.
"""

from __future__ import annotations

import json
from typing import Any

from .config import ModelConfig
from .contract import LoraSignature


def lora_kwargs(cfg: ModelConfig, rank: int = 0, alpha: int = 0) -> dict[str, Any]:
    """Keyword arguments of the run's ``LoraConfig``.

    ``rank`` / ``alpha`` override the run's values for merged adapters (a
    ``cat`` gateway has rank experts x r, and alpha = rank).
    """
    return {"r": rank or cfg.lora_r, "lora_alpha": alpha or (rank or cfg.lora_alpha),
            "lora_dropout": cfg.lora_dropout, "target_modules": list(cfg.target_modules),
            "bias": "none", "task_type": "CAUSAL_LM"}


def adapter_config(cfg: ModelConfig, base_model: str, rank: int = 0,
                   alpha: int = 0) -> dict[str, Any]:
    """The ``adapter_config.json`` of a checkpoint, loadable by ``PeftModel.from_pretrained``."""
    return {"peft_type": "LORA", "base_model_name_or_path": base_model,
            **lora_kwargs(cfg, rank, alpha)}


def lora_signature(cfg: ModelConfig) -> LoraSignature:
    """What must match between nodes and server for adapters to be exchangeable."""
    return LoraSignature(cfg.lora_r, cfg.lora_alpha, json.dumps(sorted(cfg.target_modules)),
                         cfg.lora_variant)


A_SUFFIX = ".lora_A.weight"


def is_a(key: str) -> bool:
    """Whether a saved-adapter key is a LoRA ``A`` matrix (``(r, in)``)."""
    return key.endswith(A_SUFFIX)


def a_part(weights: dict) -> dict:
    """The ``A`` matrices of an adapter (what FFA-LoRA keeps frozen)."""
    return {k: v for k, v in weights.items() if is_a(k)}


def b_part(weights: dict) -> dict:
    """Everything but the ``A`` matrices (what FFA-LoRA trains and sends)."""
    return {k: v for k, v in weights.items() if not is_a(k)}
