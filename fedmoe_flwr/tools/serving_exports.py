"""Exports for the engines people serve with: vLLM (and SGLang, LoRAX), llama.cpp and Ollama.

- ``vllm``: every expert and the gateway as a PEFT adapter directory, and a
  README with the exact ``vllm serve`` command (``--enable-lora``,
  ``--lora-modules name=path ...``, ``--max-lora-rank`` rounded up to a rank
  vLLM accepts) and the ``fedmoe serve --upstream`` command that puts this
  run's router in front of it.
- ``gguf``: every adapter as a llama.cpp LoRA adapter GGUF (``general.type =
  adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``; tensors
  ``<base tensor>.lora_a`` / ``.lora_b`` under llama.cpp's names, as its
  ``convert_lora_to_gguf.py`` writes them), the base model as a GGUF when the
  run's base has none, and an Ollama ``Modelfile`` per adapter (``FROM`` the
  base, ``ADAPTER`` the adapter).

llama.cpp's llama architecture permutes the rows of the query and key
projections (its RoPE layout); an adapter's ``B`` of those projections is
permuted the same way so that ``B A`` lands on the permuted weights.  Qwen2
has no such permutation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from fedmoe_flwr.server.rundir import AdapterInfo, RunDirError, RunView

VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # what --max-lora-rank accepts
GGUF_ARCH = {"qwen2": "qwen2", "llama": "llama"}


def vllm_rank(rank: int) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds ``rank``."""
    for r in VLLM_RANKS:
        if r >= rank:
            return r
    raise RunDirError(f"LoRA rank {rank} is above vLLM's largest --max-lora-rank "
                      f"{VLLM_RANKS[-1]}")


def base_path(run: RunView) -> str:
    """Where the base model's files are: a hub id stays an id, the rest a local directory."""
    from fedmoe_flwr.node.sources import effective_source, resolve_model_path
    from fedmoe_flwr.tools.inference import run_app_config

    model = run_app_config(run).model
    if effective_source(model.name, model.source) in ("huggingface", "modelscope"):
        return model.name
    return resolve_model_path(model)


def export_vllm(run: RunView, out: Path, final: Path | None = None) -> Path:
    """PEFT adapter directories and a README with the serving commands.

    Files are written to ``out`` (a staging directory, published whole) while the README names
    ``final``, where they will be once published: its commands must work as pasted.
    """
    final = out if final is None else final
    infos = [run.adapter(n) for n in run.names()]
    for info in infos:
        info.weights()  # every checkpoint verified before anything is copied
        target = out / info.name
        target.mkdir(parents=True)
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy2(info.path / name, target / name)
    rank = vllm_rank(max(int(i.config["r"]) for i in infos))
    modules = " ".join(f"{i.name}={final / i.name}" for i in infos)
    base = base_path(run)
    (out / "README.md").write_text(
        f"# Adapters of {run.root.name} for vLLM\n\n"
        f"One PEFT adapter directory per expert and the gateway (LoRA rank up to "
        f"{max(int(i.config['r']) for i in infos)}).\n\n"
        f"Serve them, each selected by the request's `model`:\n\n```bash\n"
        f"vllm serve {base} --enable-lora --max-lora-rank {rank} --max-loras {len(infos)} \\\n"
        f"  --lora-modules {modules}\n```\n\n"
        f"SGLang: `python -m sglang.launch_server --model-path {base} --lora-paths "
        f"{modules}`.\n\n"
        f"Route questions to the right expert with this run's router in front (model "
        f"`auto`):\n\n```bash\n"
        f"fedmoe serve {run.root} --upstream http://127.0.0.1:8000/v1 --port 8080\n```\n")
    return out


# ---------------------------------------------------------------------------- gguf


def _permute(b: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's row order of a llama query/key projection, applied to a LoRA ``B``."""
    rows = b.shape[0]
    return (b.reshape(heads, 2, rows // heads // 2, *b.shape[1:]).swapaxes(1, 2)
            .reshape(b.shape))


def lora_tensors(info: AdapterInfo, config: dict[str, Any]) -> dict[str, np.ndarray]:
    """The adapter's ``A`` / ``B`` under llama.cpp's tensor names (``.lora_a``/``.lora_b``)."""
    import gguf

    arch = GGUF_ARCH.get(config.get("model_type", ""))
    if arch is None:
        raise RunDirError(f"GGUF export knows qwen2 and llama bases, this run's is "
                          f"{config.get('model_type')!r}")
    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch.upper()),
                                     config["num_hidden_layers"])
    out: dict[str, np.ndarray] = {}
    for key, value in sorted(info.weights().items()):
        module = key.removeprefix("base_model.model.").rsplit(".lora_", 1)[0]
        name = names.get_name(module)
        if name is None:
            raise RunDirError(f"no llama.cpp tensor name for {module} ({info.path})")
        part = "lora_a" if ".lora_A." in key else "lora_b"
        if arch == "llama" and part == "lora_b" and module.endswith(("q_proj", "k_proj")):
            heads = config["num_attention_heads"] if module.endswith("q_proj") else \
                config.get("num_key_value_heads", config["num_attention_heads"])
            value = _permute(value, heads)
        out[f"{name}.weight.{part}"] = np.ascontiguousarray(value, np.float32)
    return out


def write_lora_gguf(info: AdapterInfo, config: dict[str, Any], path: Path) -> Path:
    """One adapter as a llama.cpp LoRA adapter GGUF file (float32)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), GGUF_ARCH[config["model_type"]])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(info.config["lora_alpha"]))
    writer.add_name(f"{info.name} v{info.version}")
    for name, array in lora_tensors(info, config).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def export_gguf(run: RunView, out: Path, final: Path | None = None) -> Path:
    """Adapter GGUFs, a base model GGUF when needed, and one Ollama Modelfile per adapter.

    Written to ``out``; the README and Modelfiles name ``final`` (see :func:`export_vllm`).
    """
    final = out if final is None else final
    base = Path(base_path(run))
    config = json.loads((base / "config.json").read_text())
    base_gguf = _base_gguf(run, base, out, final)
    for name in run.names():
        info = run.adapter(name)
        adapter = write_lora_gguf(info, config, out / f"{name}.gguf")
        (out / f"Modelfile.{name}").write_text(f"FROM {base_gguf}\nADAPTER ./{adapter.name}\n")
    (out / "README.md").write_text(
        f"# Adapters of {run.root.name} for llama.cpp and Ollama\n\n"
        f"llama.cpp: `llama-cli -m {base_gguf} --lora {final / run.names()[0]}.gguf`\n\n"
        f"Ollama, one model per adapter: `ollama create {run.names()[0]} -f "
        f"{final / ('Modelfile.' + run.names()[0])}`\n")
    return out


def _base_gguf(run: RunView, base: Path, out: Path, final: Path) -> str:
    """The GGUF the adapters apply to: the run's own GGUF, else one written from the base."""
    from fedmoe_flwr.node.gguf import SOURCE_FILE, write_gguf

    source = base / SOURCE_FILE
    if source.exists():  # converted from a GGUF: that file is the base (embedded or given)
        from fedmoe_flwr.tools.inference import run_app_config

        name = run_app_config(run).model.name
        if name.lower().endswith(".gguf"):
            return str(Path(name).expanduser().resolve())
        from fedmoe_flwr.node.embedded import EMBEDDED_GGUF

        if name in EMBEDDED_GGUF:
            return str(EMBEDDED_GGUF[name]())
    write_gguf(base, out / "base.gguf")
    return str(final / "base.gguf")
