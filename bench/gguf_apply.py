"""Whether llama.cpp applies an exported adapter GGUF the way PEFT applies the adapter.

Reproduce (about 20 minutes the first time on 2 CPU cores, most of it building
llama.cpp; about 2 minutes after that)::

    bash scripts/bench.sh gguf_apply
    bash scripts/bench.sh gguf_apply --models qwen2-tiny     # the quick one

``fedmoe export --format gguf`` writes each expert and the gateway as a llama.cpp
LoRA adapter GGUF.  Reading it back with the ``gguf`` package (the tests do)
proves the tensors are there; only llama.cpp applying it proves the names, the
alpha and the query/key row permutation of llama-architecture bases are what
llama.cpp expects.  So this benchmark:

1. builds ``llama-cpp-python`` (pinned below) from the registry's source
   release into ``.fedmoe/`` once, bounded by ``--build-timeout``; the
   project's own environment is not touched;
2. writes a run directory with the server's own code
   (:func:`~fedmoe_flwr.tools.untrained_run.untrained_run`: every ``B`` drawn
   from a seeded normal, so every exported tensor changes the logits) and
   exports it with the real ``fedmoe export --format gguf``;
3. scores the same token ids with llama.cpp (base GGUF, then base + each
   adapter GGUF) and with transformers + PEFT (the run's adapter directories
   loaded by ``PeftModel``), and compares the adapters' effect on the logits,
   ``d = logits(base + adapter) - logits(base)``, between the two engines;
4. repeats it for a control adapter written without the query/key permutation,
   which a correct comparison must tell apart.

The SmolLM2 base is the Q4_1 GGUF itself in llama.cpp and its fp32
dequantization in PEFT, so even the two bases differ a little (llama.cpp also
quantizes activations); the table shows that floor next to each adapter.
Results go to ``bench/results/gguf_apply.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from federation_runs import ROOT, publish

sys.path.insert(0, str(ROOT))

LLAMA_CPP = "llama-cpp-python==0.3.36"
BUILD_DIR = ROOT / ".fedmoe" / "llama-cpp-python-0.3.36"
# A library build: no examples, tools, server or tests, no OpenMP (two cores), no curl.
CMAKE_ARGS = ("-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF "
              "-DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF")
RUN_CONFIG = {"model.quantization": 0}  # PEFT's side in f32: the reference, not a 4-bit copy
DOMAINS = ("python", "sql", "docs")


def llama_cpp(timeout: float) -> tuple[Any, float]:
    """The ``llama_cpp`` module, built into :data:`BUILD_DIR` on first use; the build's seconds."""
    t0 = time.perf_counter()
    if not (BUILD_DIR / "llama_cpp").is_dir():
        staging = Path(tempfile.mkdtemp(prefix="llama-cpp-", dir=BUILD_DIR.parent))
        env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "CMAKE_BUILD_PARALLEL_LEVEL": "2"}
        print(f"building {LLAMA_CPP} from source into {BUILD_DIR} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        str(staging), LLAMA_CPP, "diskcache==5.6.3"], env=env, check=True,
                       timeout=timeout)
        (staging / "build_seconds.txt").write_text(f"{time.perf_counter() - t0:.0f}\n")
        staging.rename(BUILD_DIR)
    sys.path.insert(0, str(BUILD_DIR))
    import llama_cpp as module

    return module, float((BUILD_DIR / "build_seconds.txt").read_text())


def prompts(n: int) -> list[str]:
    """``n`` prompts with their reference answers from each domain of ``data/``."""
    out = []
    for domain in DOMAINS:
        lines = (ROOT / "data" / f"{domain}.jsonl").read_text().splitlines()[-n:]
        out += [f"{r['prompt']}\n{r['reference_code']}" for r in map(json.loads, lines)]
    return out


def llama_logits(module: Any, base: Path, adapter: Path | None, ids: list[list[int]]
                 ) -> list[np.ndarray]:
    """llama.cpp's logits at every position of each sequence (one context per file)."""
    llm = module.Llama(model_path=str(base), lora_path=str(adapter) if adapter else None,
                       n_ctx=512, n_batch=512, n_threads=2, logits_all=True, verbose=False,
                       seed=0)
    out = []
    for seq in ids:
        llm.reset()
        llm.eval(seq)
        out.append(np.array(llm.scores[: len(seq)], dtype=np.float64))
    llm.close()
    return out


def peft_logits(base_dir: str, adapters: dict[str, Path], ids: list[list[int]]
                ) -> dict[str | None, list[np.ndarray]]:
    """Logits of transformers + PEFT for the base (key None) and for each adapter directory."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    names = list(adapters)
    peft = PeftModel.from_pretrained(model, str(adapters[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        peft.load_adapter(str(adapters[name]), adapter_name=name)
    peft.eval()

    def run() -> list[np.ndarray]:
        with torch.no_grad():
            return [peft(input_ids=torch.tensor([s])).logits[0].double().numpy()
                    for s in ids]

    out: dict[str | None, list[np.ndarray]] = {}
    with peft.disable_adapter():
        out[None] = run()
    for name in names:
        peft.set_adapter(name)
        out[name] = run()
    return out


def compare(l_base: list, l_ad: list, p_base: list, p_ad: list) -> dict[str, float]:
    """How closely llama.cpp's change of the logits follows PEFT's (all positions, vocab)."""
    d_l = np.concatenate([a - b for a, b in zip(l_ad, l_base, strict=True)]).ravel()
    d_p = np.concatenate([a - b for a, b in zip(p_ad, p_base, strict=True)]).ravel()
    return {"delta_cos": float(d_l @ d_p / (np.linalg.norm(d_l) * np.linalg.norm(d_p))),
            "delta_rel_err": float(np.linalg.norm(d_l - d_p) / np.linalg.norm(d_p)),
            "scale_ratio": float(np.linalg.norm(d_l) / np.linalg.norm(d_p)),
            "delta_rms": float(np.sqrt(np.mean(d_p ** 2))),
            "top1_agree": _top1(l_ad, p_ad)}


def unpermuted_control(view: Any, name: str, out: Path) -> Path:
    """The adapter written as if its base had no query/key permutation (a wrong export)."""
    from fedmoe_flwr.tools import serving_exports

    config = json.loads((Path(serving_exports.base_path(view)) / "config.json").read_text())
    original = serving_exports._permute
    serving_exports._permute = lambda b, heads: b
    try:
        return serving_exports.write_lora_gguf(view.adapter(name), config, out)
    finally:
        serving_exports._permute = original


def dequantized(src: Path, dst: Path) -> Path:
    """The same GGUF with every tensor dequantized to f32 (metadata, names, layout kept).

    llama.cpp multiplies quantized weights by quantized activations, so with the
    shipped Q4_1 file its logits and PEFT's differ by more than an adapter's
    effect; on this file both engines hold the same numbers and any remaining
    difference is the adapter export's.
    """
    import gguf

    reader = gguf.GGUFReader(str(src))
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(str(dst), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture",
                                                "general.file_type"):
            continue
        sub = field.types[1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), field.types[0], sub_type=sub)
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        writer.add_tensor(t.name, data.reshape([int(n) for n in reversed(t.shape)]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def bench_model(module: Any, model: str, args: argparse.Namespace, work: Path
                ) -> list[dict[str, Any]]:
    """Export one model's run as GGUF and compare every adapter in both engines.

    One block per base file llama.cpp runs: the one the export's Modelfiles
    name and, when that one is quantized, its f32 dequantization.
    """
    from fedmoe_flwr.server.rundir import RunView
    from fedmoe_flwr.tools.serving_exports import base_path
    from fedmoe_flwr.tools.untrained_run import untrained_run

    run = untrained_run(work / model, model, scale=args.scale, **RUN_CONFIG)
    out = work / f"{model}-gguf"
    subprocess.run([sys.executable, "-m", "fedmoe_flwr.tools.cli", "export", str(run),
                    "--format", "gguf", "--out", str(out)], check=True, cwd=ROOT)
    view = RunView(run)
    names = view.names()
    shipped = Path((out / f"Modelfile.{names[0]}").read_text().split()[1])
    tok = module.Llama(model_path=str(shipped), vocab_only=True, verbose=False)
    ids = [tok.tokenize(p.encode(), add_bos=False)[: args.max_tokens]
           for p in prompts(args.prompts)]
    ref = peft_logits(base_path(view), {n: view.adapter(n).path for n in names}, ids)
    control = unpermuted_control(view, names[0], work / f"{model}-control.gguf")
    # label -> (the file llama.cpp applies, the adapter PEFT applies)
    adapters = {**{n: (out / f"{n}.gguf", n) for n in names},
                f"{names[0]} without q/k permutation (control)": (control, names[0])}
    bases = [shipped]
    if any(t.tensor_type.name not in ("F32", "F16") for t in _tensors(shipped)):
        bases.append(dequantized(shipped, work / f"{model}-f32.gguf"))
    blocks = []
    for base in bases:
        l_base = llama_logits(module, base, None, ids)
        rows = [{"adapter": label, **compare(l_base, llama_logits(module, base, path, ids),
                                             ref[None], ref[peft_name])}
                for label, (path, peft_name) in adapters.items()]
        blocks.append({"model": model, "base_gguf": base.name, "tokens": sum(map(len, ids)),
                       "sequences": len(ids), "base_rel_err": _rel(l_base, ref[None]),
                       "base_top1_agree": _top1(l_base, ref[None]), "rows": rows})
    return blocks


def _tensors(path: Path) -> list[Any]:
    import gguf

    return list(gguf.GGUFReader(str(path)).tensors)


def _top1(a: list, b: list) -> float:
    return float(np.mean([np.mean(x.argmax(-1) == y.argmax(-1)) for x, y in zip(a, b,
                                                                               strict=True)]))


def _rel(a: list, b: list) -> float:
    x, y = np.concatenate(a).ravel(), np.concatenate(b).ravel()
    return float(np.linalg.norm(x - y) / np.linalg.norm(y - y.mean()))


def report(results: list[dict[str, Any]], build_s: float) -> list[str]:
    """The markdown table, one block per model."""
    lines = ["# llama.cpp applies the exported adapter GGUFs as PEFT does", "",
             f"`bash scripts/bench.sh gguf_apply` ({LLAMA_CPP}, built from source on this "
             f"machine once, in {build_s / 60:.0f} min). `d` is an adapter's change of the "
             "logits over every position and vocabulary entry; `cos` and `rel err` compare "
             "llama.cpp's `d` with PEFT's; `scale` is the ratio of their norms (1 = the alpha "
             "and rank were read right).", ""]
    for res in results:
        lines += [f"## {res['model']} ({res['base_gguf']}, {res['sequences']} sequences, "
                  f"{res['tokens']} tokens)", "",
                  "| adapter | cos(d_llama.cpp, d_peft) | rel err | scale | rms of d_peft "
                  "| top-1 agree |", "|---|---:|---:|---:|---:|---:|"]
        for r in res["rows"]:
            lines.append(f"| {r['adapter']} | {r['delta_cos']:.4f} | {r['delta_rel_err']:.3f}"
                         f" | {r['scale_ratio']:.3f} | {r['delta_rms']:.3f} | "
                         f"{r['top1_agree']:.3f} |")
        lines += ["", f"Base against base (no adapter): relative error of llama.cpp's logits "
                  f"against PEFT's {res['base_rel_err']:.4f}, top-1 agreement "
                  f"{res['base_top1_agree']:.3f}.", ""]
    return lines


def main() -> None:
    """Build llama.cpp if needed, then every model; results to bench/results/."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="smollm2-135m,qwen2-tiny")
    ap.add_argument("--scale", type=float, default=0.02, help="std of every adapter's B")
    ap.add_argument("--prompts", type=int, default=2, help="per domain of data/")
    ap.add_argument("--max-tokens", type=int, default=96, help="per sequence")
    ap.add_argument("--build-timeout", type=float, default=3600.0, help="seconds")
    ap.add_argument("--work", type=Path, default=ROOT / ".fedmoe" / "bench-gguf")
    args = ap.parse_args()
    module, build_s = llama_cpp(args.build_timeout)
    shutil.rmtree(args.work, ignore_errors=True)  # this benchmark's own scratch runs
    args.work.mkdir(parents=True)
    results = [b for m in args.models.split(",") for b in bench_model(module, m.strip(), args,
                                                                        args.work)]
    publish("gguf_apply", report(results, build_s))
    (ROOT / "bench" / "results" / "gguf_apply.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "build_seconds": build_s,
         "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
