"""The embedded qwen2-tiny builds from the package alone; its shipped tokenizer is what the data
trains."""

import json

from fedmoe_flwr.node.tiny_model import TOKENIZER_FILE, build_key, train_tokenizer


def test_the_shipped_tokenizer_is_what_the_data_trains():
    # data/ changed? `python -m fedmoe_flwr.node.tiny_model` retrains and rewrites the file.
    shipped = json.loads(TOKENIZER_FILE.read_text())
    trained = json.loads(train_tokenizer())
    assert shipped["model"]["vocab"] == trained["model"]["vocab"]
    assert shipped["model"]["merges"] == trained["model"]["merges"]


def test_the_build_key_follows_the_tokenizer_file(tmp_path, monkeypatch):
    import fedmoe_flwr.node.tiny_model as tm

    key = build_key()
    other = tmp_path / "tok.json"
    other.write_text(TOKENIZER_FILE.read_text().replace('"<|im_end|>"', '"<|im_stop|>"', 1))
    monkeypatch.setattr(tm, "TOKENIZER_FILE", other)
    assert build_key() != key
