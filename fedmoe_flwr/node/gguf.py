"""GGUF checkpoints (llama.cpp's format) as base models, and GGUF files written from ours.

Teams often hold their models as GGUF only: Qwen publishes official GGUFs of
Qwen2, Qwen2.5 and Qwen3; Ollama and LM Studio keep every model they pulled
as one. ``model.source = "gguf"`` (or a ``model.name`` ending in ``.gguf``)
makes such a file a base model: transformers dequantizes it (its GGUF loader
covers llama, qwen2, qwen3 and more) and the result is saved once as an
ordinary safetensors checkpoint in the model cache, keyed by the file's
content hash.  From there it takes the same bitsandbytes 4-bit + PEFT path as
any other checkpoint, so a GGUF base trains exactly like a hub model.

Saved in float32 up to 1 B parameters (the dequantized values exactly) and
bfloat16 above (a 7B cache of 15 GB instead of 30 GB; the base is re-quantized
to 4 bits on load anyway).

:func:`write_gguf` goes the other way for a Qwen2 checkpoint (tests write a
GGUF of ``qwen2-tiny`` with it; exports for llama.cpp build on it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fedmoe_flwr.config import ConfigError

SOURCE_FILE = "fedmoe-source.json"  # in a converted checkpoint: which GGUF it came from
BF16_ABOVE = 1_000_000_000  # parameters: larger models are cached in bfloat16
_HASH_CHUNK = 8 << 20


class GGUFError(ConfigError):
    """A GGUF file cannot be used as a base model (one line naming the file)."""


def file_sha256(path: Path) -> str:
    """Content hash of a (possibly multi-GB) file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _cached_sha256(path: Path, cache: Path) -> str:
    """The file's sha256, remembered by (path, size, mtime) so a 4 GB file is hashed once."""
    st = path.stat()
    stamp = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    memo = cache / "gguf-hashes" / stamp.hexdigest()[:32]
    if memo.is_file():
        return memo.read_text().strip()
    digest = file_sha256(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(digest)
    return digest


@contextlib.contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    """One converter at a time per target: simulated nodes start together and would race."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        yield


def ensure_gguf_checkpoint(path: str | Path, cache: Path,
                           expected_sha256: str | None = None) -> Path:
    """Dequantize a GGUF file once into ``cache`` and return the checkpoint directory.

    ``expected_sha256`` (an embedded model's pin) refuses a file whose content
    differs; otherwise any readable GGUF of an architecture transformers loads
    is accepted.  Errors are one :class:`GGUFError` line naming the file.
    """
    src = Path(path).expanduser()
    if not src.is_file():
        raise GGUFError(f"GGUF file {src} does not exist (model.name)")
    digest = _cached_sha256(src, cache)
    if expected_sha256 and digest != expected_sha256:
        raise GGUFError(f"{src} has sha256 {digest[:16]}..., expected {expected_sha256[:16]}...: "
                        f"the file is damaged or altered; reinstall it")
    target = cache / f"gguf-{digest[:16]}"
    if (target / "config.json").is_file():
        return target
    with _build_lock(target):
        if (target / "config.json").is_file():  # another process built it meanwhile
            return target
        tmp = Path(tempfile.mkdtemp(prefix=".gguf-", dir=target.parent))
        try:
            _convert(src, tmp, digest)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(src: Path, out: Path, digest: str) -> None:
    """GGUF -> safetensors checkpoint + tokenizer (transformers dequantizes on load)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _check_header(src)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name,
                                                     dtype=torch.float32)
    except Exception as err:  # the loader raises many kinds: name the file, one line
        raise GGUFError(f"{src}: transformers cannot load this GGUF "
                        f"({type(err).__name__}: {_one_line(err)})") from None
    if sum(p.numel() for p in model.parameters()) > BF16_ABOVE:
        model = model.to(torch.bfloat16)
        model.config.dtype = "bfloat16"
    # A GGUF-loaded model refuses save_pretrained and its config keeps a gguf
    # quantization_config that a later BitsAndBytesConfig load rejects: drop both.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    (out / SOURCE_FILE).write_text(json.dumps({"gguf": src.name, "sha256": digest}, indent=2))


def _check_header(src: Path) -> None:
    """Read the GGUF header and tensor table: a truncated or foreign file fails here."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(src))
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except Exception as err:
        raise GGUFError(f"{src} is not a readable GGUF file ({type(err).__name__}: "
                        f"{_one_line(err)})") from None
    size = src.stat().st_size
    if end > size:
        raise GGUFError(f"{src} is truncated: its tensors need {end:,} bytes, the file has "
                        f"{size:,}")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:200] + ("..." if len(text) > 200 else "")


# ------------------------------------------------------------------------------ writing


def write_gguf(model_dir: str | Path, out: str | Path, *, dtype: str = "f32") -> Path:
    """Write a Qwen2 checkpoint directory (safetensors + tokenizer.json) as a GGUF file.

    ``dtype``: ``f32``, ``f16`` or ``q8_0`` (llama.cpp's 8-bit blocks, for 2-D
    weights whose rows are a multiple of 32; norms stay f32 as llama.cpp
    keeps them).  Tensor names and metadata follow llama.cpp's ``qwen2``
    architecture, so llama.cpp and transformers' GGUF loader both read it.
    """
    import gguf
    from safetensors.numpy import load_file

    src, dst = Path(model_dir), Path(out)
    config = json.loads((src / "config.json").read_text())
    if config.get("model_type") != "qwen2":
        raise GGUFError(f"{src}: write_gguf writes qwen2 checkpoints, this is "
                        f"{config.get('model_type')!r}")
    tensors: dict[str, Any] = {}
    for file in sorted(src.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    writer = gguf.GGUFWriter(str(dst), "qwen2")
    _write_config(writer, config)
    _write_tokenizer(writer, src)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, config["num_hidden_layers"])
    for name, array in sorted(tensors.items()):
        if name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise GGUFError(f"{src}: no GGUF name for tensor {name}")
        _add_tensor(writer, gguf_name, array, dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def _write_config(writer: Any, config: dict[str, Any]) -> None:
    writer.add_name(config.get("_name_or_path") or "qwen2")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    rope = config.get("rope_parameters") or {}
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))


def _write_tokenizer(writer: Any, src: Path) -> None:
    """Byte-level BPE vocabulary, merges and special tokens as llama.cpp's ``gpt2`` model."""
    tok = json.loads((src / "tokenizer.json").read_text())
    vocab: dict[str, int] = dict(tok["model"]["vocab"])
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = {a["content"] for a in tok.get("added_tokens", []) if a.get("special")}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in special else 1 for t in tokens])  # 3 = control
    writer.add_token_merges(merges)
    cfg_path = src / "tokenizer_config.json"
    tcfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    for key, add in (("eos_token", writer.add_eos_token_id),
                     ("pad_token", writer.add_pad_token_id)):
        token = tcfg.get(key)
        if isinstance(token, dict):
            token = token.get("content")
        if token in vocab:
            add(vocab[token])
    template = tcfg.get("chat_template")
    if not template and (src / "chat_template.jinja").exists():
        template = (src / "chat_template.jinja").read_text()
    if template:
        writer.add_chat_template(template)


def _add_tensor(writer: Any, name: str, array: Any, dtype: str) -> None:
    import gguf
    import numpy as np

    data = np.ascontiguousarray(array, dtype=np.float32)
    if dtype == "q8_0" and data.ndim == 2 and data.shape[1] % 32 == 0:
        q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    elif dtype == "f16" and data.ndim == 2:
        writer.add_tensor(name, data.astype(np.float16))
    else:
        writer.add_tensor(name, data)
