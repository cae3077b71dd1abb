"""Where a node's base model comes from: an embedded model, a local path, a GGUF file, a hub.

``model.source`` (run config; a node may override it with its node config
``model-source``, e.g. a site that reaches ModelScope but not Hugging Face):

- ``auto``: an embedded name (``qwen2-tiny``, ``smollm2-135m``: :mod:`.embedded`) is
  built or converted locally; a path ending in ``.gguf`` is ``gguf``; an existing
  directory is ``local``; anything else is a Hugging Face id.
- ``huggingface``: ``huggingface_hub.snapshot_download`` (its cache, ``HF_HOME``,
  ``HF_HUB_OFFLINE`` and mirrors such as ``HF_ENDPOINT`` apply).
- ``modelscope``: ModelScope's own ``snapshot_download`` (the optional extra
  ``pip install 'fedmoe-flwr[modelscope]'``; imported only when chosen).
- ``local``: a directory with ``config.json``, used as it is.
- ``gguf``: a llama.cpp GGUF file, dequantized once into the model cache
  (:mod:`.gguf`), then loaded like a local checkpoint.

Every source ends in a local directory that ``from_pretrained`` reads, and the
fingerprint the server compares is taken from its files, so two nodes that got
the same model from different hubs agree, and nodes with different weights do
not.  Only the files a causal LM needs are fetched.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from fedmoe_flwr.config import ConfigError, ModelConfig
from fedmoe_flwr.node.embedded import EMBEDDED
from fedmoe_flwr.node.gguf import ensure_gguf_checkpoint
from fedmoe_flwr.node.tiny_model import cache_root

MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]


def effective_source(name: str, source: str) -> str:
    """``auto`` made concrete for ``name``."""
    if source != "auto":
        return source
    if name in EMBEDDED:
        return "embedded"
    if name.lower().endswith(".gguf"):
        return "gguf"
    return "local" if Path(name).expanduser().is_dir() else "huggingface"


def resolve_model_path(cfg: ModelConfig, source: str | None = None) -> str:
    """A local directory holding ``cfg.name``, downloaded first if it comes from a hub.

    ``source`` overrides ``cfg.source`` (a node's ``model-source``).
    """
    name, chosen = cfg.name, effective_source(cfg.name, source or cfg.source)
    if chosen == "embedded" or (name in EMBEDDED and chosen in ("local", "gguf")):
        return str(EMBEDDED[name]())
    if chosen == "gguf":
        return str(ensure_gguf_checkpoint(name, cache_root()))
    if chosen == "local":
        path = Path(name).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.name {name!r} with model.source 'local' must be a "
                              f"directory with a config.json (a saved Hugging Face model)")
        return str(path.resolve())
    revision = cfg.revision or None
    if chosen == "huggingface":
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id=name, revision=revision, allow_patterns=MODEL_FILES)
    if chosen == "modelscope":
        return _modelscope_download(name, revision)
    raise ConfigError(f"unknown model.source {chosen!r}")


def _modelscope_download(name: str, revision: str | None) -> str:
    try:
        modelscope = importlib.import_module("modelscope")
    except ImportError:
        raise ConfigError("model.source 'modelscope' needs the modelscope package: "
                          "pip install 'fedmoe-flwr[modelscope]' (or pip install modelscope) "
                          "on this node, or use model.source 'huggingface' / a local "
                          "path") from None
    kwargs = {"allow_patterns": MODEL_FILES}
    if revision:
        kwargs["revision"] = revision
    return str(modelscope.snapshot_download(name, **kwargs))
