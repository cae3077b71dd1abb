"""The embedded ``qwen2-tiny`` model: a real Qwen2 checkpoint, built offline.

No weights can be downloaded on CI or on an air-gapped laptop, yet the whole
system (4-bit quantisation, PEFT, Flower) should run and learn there.  So we
build a real ``Qwen2ForCausalLM`` with tiny dimensions and a byte-level BPE
tokenizer trained on ``data/``, save both with ``save_pretrained`` into a local
cache, and from then on load it through exactly the same ``from_pretrained``
path as ``Qwen/Qwen2-0.5B-Instruct``.

The build is deterministic (seeded init, a tokenizer shipped with the
package), so every node of a deployment builds bit-identical weights; the
fingerprint in the registration message lets the server verify that.  The
tokenizer is trained on ``data/*.jsonl`` once, by the developers
(``python -m fedmoe_flwr.node.tiny_model``), and shipped as
``assets/qwen2-tiny-tokenizer.json``: an installed wheel builds the model
without the app's data, and a test keeps the file equal to what the data
trains.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from fedmoe_flwr import APP_DIR

TINY_NAME = "qwen2-tiny"
BUILD_VERSION = 2  # bump when the architecture or tokenizer recipe below changes
TOKENIZER_FILE = Path(__file__).parent / "assets" / "qwen2-tiny-tokenizer.json"

# Linear in-features are multiples of 64 because bitsandbytes quantises in
# blocks of 64 on the CPU (hidden 128, intermediate 384; head_dim 32).
TINY_DIMS = {
    "vocab_size": 2048,
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
    "rope_theta": 10000.0,
    "initializer_range": 0.1,
}
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML, as Qwen2 instruct models use it.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def data_dir() -> Path:
    """The sample data of the app checkout (the tokenizer's training corpus)."""
    return APP_DIR / "data"


def cache_root() -> Path:
    """Where built models live: ``$FEDMOE_CACHE`` or ``~/.cache/fedmoe``."""
    return Path(os.environ.get("FEDMOE_CACHE", Path.home() / ".cache" / "fedmoe"))


def _corpus_files() -> list[Path]:
    files = sorted(data_dir().glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no *.jsonl files in {data_dir()} to train the tiny tokenizer")
    return files


def build_key() -> str:
    """A hash of everything the build depends on, so a changed recipe rebuilds."""
    h = hashlib.sha256(json.dumps([BUILD_VERSION, TINY_DIMS, SPECIAL_TOKENS,
                                   CHAT_TEMPLATE]).encode())
    h.update(TOKENIZER_FILE.read_bytes())
    return h.hexdigest()[:16]


def _corpus(files: list[Path]) -> list[str]:
    texts = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts.append(row.get("prompt", ""))
                texts.append(row.get("reference_code", ""))
    return texts


def train_tokenizer() -> str:
    """The byte-level BPE tokenizer trained on ``data/*.jsonl``, as ``tokenizer.json`` text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_DIMS["vocab_size"], special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_corpus(_corpus_files()), trainer=trainer)
    return tok.to_str(pretty=False)


def _build(target: Path) -> None:
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer.from_file(str(TOKENIZER_FILE))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(target)

    torch.manual_seed(0)  # deterministic init: every node builds identical weights
    config = Qwen2Config(
        **TINY_DIMS, bos_token_id=None, eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(target)


def ensure_tiny_model() -> Path:
    """Build ``qwen2-tiny`` into the cache once and return its directory.

    Several simulated nodes may race here; each builds into its own temp
    directory and renames it into place, so a reader never sees half a model.
    """
    target = cache_root() / f"{TINY_NAME}-{build_key()}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{TINY_NAME}-", dir=target.parent))
    try:
        _build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").exists():  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_path(name: str) -> str:
    """Map ``qwen2-tiny`` to its built directory; pass other ids/paths through."""
    return str(ensure_tiny_model()) if name == TINY_NAME else name


if __name__ == "__main__":  # developers: retrain the shipped tokenizer after data/ changed
    TOKENIZER_FILE.parent.mkdir(parents=True, exist_ok=True)
    TOKENIZER_FILE.write_text(train_tokenizer())
    print(f"wrote {TOKENIZER_FILE} ({TOKENIZER_FILE.stat().st_size:,} bytes)")
