"""model.source: the embedded model, a local path, and the Hugging Face / ModelScope downloads.

No hub is reachable here: the hub branches are checked up to the download call (its id,
revision and file patterns), the local path by loading the tiny model for real.
"""

import shutil
import sys
import types

import pytest

from fedmoe_flwr.config import ConfigError, ModelConfig, parse_run_config
from fedmoe_flwr.node.model import model_fingerprint
from fedmoe_flwr.node.settings import node_settings
from fedmoe_flwr.node.sources import MODEL_FILES, effective_source, resolve_model_path
from fedmoe_flwr.node.tiny_model import ensure_tiny_model


def test_auto_picks_tiny_local_or_huggingface(tmp_path):
    assert effective_source("qwen2-tiny", "auto") == "embedded"
    assert effective_source(str(tmp_path), "auto") == "local"
    assert effective_source("Qwen/Qwen2-0.5B-Instruct", "auto") == "huggingface"
    assert effective_source("Qwen/Qwen2-0.5B-Instruct", "modelscope") == "modelscope"


def test_huggingface_downloads_the_configured_id_and_revision(monkeypatch, tmp_path):
    calls = []
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda **kw: calls.append(kw) or str(tmp_path))
    cfg = ModelConfig(name="Qwen/Qwen2-0.5B-Instruct", source="huggingface", revision="v1.1")
    assert resolve_model_path(cfg) == str(tmp_path)
    assert calls == [{"repo_id": "Qwen/Qwen2-0.5B-Instruct", "revision": "v1.1",
                      "allow_patterns": MODEL_FILES}]


def test_modelscope_downloads_through_its_own_snapshot_download(monkeypatch, tmp_path):
    calls = []
    fake = types.ModuleType("modelscope")
    fake.snapshot_download = lambda model_id, **kw: calls.append((model_id, kw)) or str(tmp_path)
    monkeypatch.setitem(sys.modules, "modelscope", fake)
    cfg = ModelConfig(name="qwen/Qwen2-0.5B-Instruct", source="modelscope", revision="master")
    assert resolve_model_path(cfg) == str(tmp_path)
    assert calls == [("qwen/Qwen2-0.5B-Instruct", {"allow_patterns": MODEL_FILES,
                                                   "revision": "master"})]
    # a node config can choose the hub for one node, whatever the run config says
    resolve_model_path(ModelConfig(name="qwen/Qwen2-0.5B-Instruct"), "modelscope")
    assert calls[-1] == ("qwen/Qwen2-0.5B-Instruct", {"allow_patterns": MODEL_FILES})


def test_modelscope_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "modelscope", None)  # import raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'fedmoe-flwr\[modelscope\]'"):
        resolve_model_path(ModelConfig(name="qwen/Qwen2-0.5B-Instruct", source="modelscope"))


def test_local_source_needs_a_saved_model(tmp_path):
    with pytest.raises(ConfigError, match="config.json"):
        resolve_model_path(ModelConfig(name=str(tmp_path), source="local"))
    with pytest.raises(ConfigError, match="model.source"):
        parse_run_config({"model.source": "ftp"})
    with pytest.raises(ConfigError, match="model-source"):
        node_settings({"specialty": "sql_expert", "data-path": "data/sql.jsonl",
                       "model-source": "ftp"}, parse_run_config({}))


@pytest.mark.slow  # builds the tiny model in the test cache
def test_one_model_from_two_places_has_one_fingerprint(tmp_path):
    tiny = ensure_tiny_model()
    for hub in ("hf", "ms"):  # what two hubs' snapshot directories would hold
        shutil.copytree(tiny, tmp_path / hub)
    fps = {model_fingerprint(resolve_model_path(ModelConfig(name=str(tmp_path / hub))))
           for hub in ("hf", "ms")}
    assert fps == {model_fingerprint(str(tiny))}


@pytest.mark.slow
def test_a_local_path_loads_like_the_embedded_model(tmp_path):
    from fedmoe_flwr.node.model import load_base

    path = tmp_path / "my-qwen"
    shutil.copytree(ensure_tiny_model(), path)
    loaded = load_base(ModelConfig(name=str(path), source="local"))
    assert type(loaded.peft_model.base_model.model).__name__ == "Qwen2ForCausalLM"
    assert loaded.fingerprint == model_fingerprint(str(ensure_tiny_model()))
