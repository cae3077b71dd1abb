"""JSONL validation errors name file and line; the split is deterministic."""

import json

import pytest

from fedmoe_flwr.node.data import (
    DataError,
    encode_example,
    encode_prompt,
    is_eval_example,
    load_local_data,
    prompt_text,
    read_jsonl,
)

GOOD = json.dumps({"prompt": "p", "reference_code": "c"})


def write(tmp_path, content: bytes):
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", "invalid JSON"),
        (json.dumps({"prompt": "p"}).encode(), "missing field 'reference_code'"),
        (json.dumps({"prompt": "  ", "reference_code": "c"}).encode(), "field 'prompt' is empty"),
        (json.dumps({"prompt": 3, "reference_code": "c"}).encode(), "'prompt' must be a string"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"prompt": "\xff\xfe", "reference_code": "c"}', "not valid UTF-8"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path, GOOD.encode() + b"\n\n" + line + b"\n")
    with pytest.raises(DataError, match=message) as info:
        read_jsonl(path)
    assert f"{path}:3:" in str(info.value)


def test_skip_mode_counts_bad_lines(tmp_path):
    path = write(tmp_path, (GOOD + "\n{bad\n" + GOOD + "\n").encode())
    rows, skipped = read_jsonl(path, on_error="skip")
    assert (len(rows), skipped) == (2, 1)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="no valid examples"):
        read_jsonl(write(tmp_path, b"\n\n"))
    with pytest.raises(DataError, match="not found"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_split_is_deterministic_and_near_fraction():
    prompts = [f"prompt number {i}" for i in range(2000)]
    first = [is_eval_example(p, 0.1) for p in prompts]
    assert first == [is_eval_example(p, 0.1) for p in prompts]
    assert 150 < sum(first) < 250


def test_shipped_data_loads():
    data = load_local_data("data/sql.jsonl")
    assert len(data.train) + len(data.eval) >= 1000 and data.skipped == 0


class _Tok:
    """Minimal whitespace tokenizer with ids, for masking arithmetic."""

    eos_token_id = 99
    chat_template = None

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        return {"input_ids": [len(w) for w in text.split()]}


def test_prompt_tokens_are_masked():
    out = encode_example(_Tok(), "aa bbb", "c dd", max_len=64)
    assert out["input_ids"] == [2, 3, 1, 2, 99]
    assert out["labels"] == [-100, -100, 1, 2, 99]
    assert out["prompt_len"] == 2


@pytest.mark.slow
def test_router_mask_is_exactly_the_users_words():
    """The loss router must not score the chat template (same in every domain)."""
    from transformers import AutoTokenizer

    from fedmoe_flwr.node.tiny_model import ensure_tiny_model

    tok = AutoTokenizer.from_pretrained(str(ensure_tiny_model()))
    prompt = "Write a SQL query that counts orders per customer"
    ids, mask = encode_prompt(tok, prompt, max_len=192)
    assert len(ids) == len(mask) and not all(mask)  # the template is there, and unmarked
    assert tok.decode([i for i, m in zip(ids, mask, strict=True) if m]).strip() == prompt
    assert ids == tok(prompt_text(tok, prompt),
                      add_special_tokens=False)["input_ids"]
    tail_ids, tail_mask = encode_prompt(tok, prompt, max_len=4)  # long prompts keep their end
    assert tail_ids == ids[-4:] and tail_mask == mask[-4:]


def test_slow_tokenizer_marks_every_token():
    ids, mask = encode_prompt(_Tok(), "aa bbb", max_len=64)
    assert ids == [2, 3] and mask == [True, True]


def test_committed_data_matches_generator():
    import subprocess
    import sys

    assert subprocess.run([sys.executable, "data/generate.py", "--check"]).returncode == 0
