"""Exports against the real tiny Qwen: PEFT adapter and merged model give the server's logits."""

import numpy as np
import pytest
import torch

from fedmoe_flwr.config import ModelConfig
from fedmoe_flwr.merge.gateway import build_gateway
from fedmoe_flwr.node.adapters import get_adapter_weights, set_adapter_weights
from fedmoe_flwr.node.model import ensure_adapter, load_base
from fedmoe_flwr.server.artifacts import RunDirectory
from fedmoe_flwr.tools.cli import main

pytestmark = pytest.mark.slow
IDS = torch.tensor([[5, 17, 300, 42, 7, 1000, 3]])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A run directory with two random experts and their cat gateway, plus an fp32 model."""
    tmp = tmp_path_factory.mktemp("export")
    cfg = ModelConfig(quantization=0)  # unquantized base: exports are compared at atol 1e-4
    loaded = load_base(cfg)
    rng = np.random.default_rng(0)
    run_dir = RunDirectory(tmp, "run", cfg)
    experts = {}
    for i, name in enumerate(["python_expert", "sql_expert"]):
        ensure_adapter(loaded, name, cfg)
        experts[name] = {k: rng.normal(0, 0.05, v.shape).astype(np.float32)
                         for k, v in get_adapter_weights(loaded.peft_model, name).items()}
        run_dir.save_adapter(f"experts/{name}", experts[name], i + 1,
                             {"specialty": name, "version": i + 1})
    gw = build_gateway(experts, {"python_expert": 0.7, "sql_expert": 0.3}, "cat",
                       rank=cfg.lora_r, alpha=cfg.lora_alpha)
    run_dir.save_adapter("gateway", gw.weights, 3, {"method": "cat", "version": 3},
                         gw.rank, gw.alpha)
    return tmp / "run", loaded, cfg, experts, gw


def _server_logits(loaded, cfg, name, weights, rank=0, alpha=0):
    ensure_adapter(loaded, name, cfg, rank, alpha)
    set_adapter_weights(loaded.peft_model, name, weights)
    with torch.no_grad():
        return loaded.peft_model(input_ids=IDS).logits


@pytest.mark.parametrize("adapter", ["python_expert", "gateway"])
def test_exported_peft_adapter_gives_the_server_logits(setup, tmp_path, adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run, loaded, cfg, experts, gw = setup
    out = tmp_path / "adapter"
    assert main(["export", str(run), "--adapter", adapter, "--out", str(out)]) == 0
    if adapter == "gateway":
        want = _server_logits(loaded, cfg, "srv_gw", gw.weights, gw.rank, gw.alpha)
    else:
        want = _server_logits(loaded, cfg, "srv_py", experts[adapter])
    from fedmoe_flwr.node.tiny_model import ensure_tiny_model

    base = AutoModelForCausalLM.from_pretrained(str(ensure_tiny_model()), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(out))
    with torch.no_grad():
        got = model(input_ids=IDS).logits
        with model.disable_adapter():
            plain = model(input_ids=IDS).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert not torch.allclose(got, plain, atol=1e-3)  # the adapter changes the logits


def test_merged_export_matches_base_plus_adapter(setup, tmp_path):
    from transformers import AutoModelForCausalLM

    run, loaded, cfg, experts, _ = setup
    want = _server_logits(loaded, cfg, "srv_sql", experts["sql_expert"])
    out32 = tmp_path / "merged32"
    assert main(["export", str(run), "--adapter", "sql_expert", "--format", "merged",
                 "--dtype", "float32", "--out", str(out32)]) == 0
    merged = AutoModelForCausalLM.from_pretrained(str(out32))
    assert not any("lora" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=IDS).logits, want, atol=1e-4, rtol=0)
    # The default 16-bit export (what a serving engine loads) agrees to bfloat16 precision.
    out16 = tmp_path / "merged16"
    assert main(["export", str(run), "--adapter", "sql_expert", "--format", "merged",
                 "--out", str(out16)]) == 0
    merged16 = AutoModelForCausalLM.from_pretrained(str(out16))
    assert merged16.dtype == torch.bfloat16
    with torch.no_grad():
        got16 = merged16(input_ids=IDS).logits.float()
    assert (got16 - want).abs().max() < 0.05 * want.abs().max()
    assert (out16 / "tokenizer.json").exists() or (out16 / "tokenizer_config.json").exists()
