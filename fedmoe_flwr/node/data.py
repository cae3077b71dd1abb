"""Local JSONL data: validation, deterministic split, tokenisation.

Each node owns one JSONL file of ``{"prompt": ..., "reference_code": ...}``
objects (the original FedMoE format).  A bad line must never surface as a
shape error deep in training, so every line is checked here and an error
names the file and the line.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset

log = logging.getLogger(__name__)

FIELDS = ("prompt", "reference_code")
IGNORE_INDEX = -100  # label value that the causal-LM loss skips (masked prompt tokens)


MAX_LINE_BYTES = 1 << 20  # 1 MiB: over 5,000 times a 192-token example; bounds memory and time


class DataError(ValueError):
    """A data file is missing, empty, or has an invalid line."""


@dataclass(frozen=True)
class LocalData:
    """A node's examples after validation, split deterministically."""

    path: Path
    train: Dataset
    eval: Dataset
    skipped: int


def _check_line(path: Path, lineno: int, raw: bytes) -> dict[str, str]:
    if len(raw) > MAX_LINE_BYTES:
        raise DataError(f"{path}:{lineno}: line is {len(raw):,} bytes, over the "
                        f"{MAX_LINE_BYTES:,}-byte limit (far more than a training example "
                        f"of train.max-seq-len tokens can use)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}:{lineno}: not valid UTF-8 ({err.reason} at byte "
                        f"{err.start})") from None
    if lineno == 1:
        text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark, as Windows editors write
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{lineno}: invalid JSON ({err.msg} at column "
                        f"{err.colno})") from None
    except RecursionError:
        raise DataError(f"{path}:{lineno}: JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{lineno}: expected a JSON object with keys {FIELDS}, got "
                        f"{type(obj).__name__}")
    for key in FIELDS:
        if key not in obj:
            raise DataError(f"{path}:{lineno}: missing field '{key}'")
        if not isinstance(obj[key], str):
            raise DataError(f"{path}:{lineno}: field '{key}' must be a string, got "
                            f"{type(obj[key]).__name__}")
        if not obj[key].strip():
            raise DataError(f"{path}:{lineno}: field '{key}' is empty")
        try:
            obj[key].encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"{path}:{lineno}: field '{key}' holds a lone surrogate "
                            f"(\\ud800-\\udfff escape), which is not text") from None
    return {key: obj[key] for key in FIELDS}


def read_jsonl(path: str | Path, on_error: str = "fail") -> tuple[list[dict[str, str]], int]:
    """Read and validate a JSONL file.

    Parameters
    ----------
    path : str or Path
        The file to read.
    on_error : {"fail", "skip"}
        ``fail`` raises on the first bad line; ``skip`` logs it, counts it and
        goes on, for large scraped files where a few bad lines are expected.

    Returns
    -------
    rows, skipped : list of dict, int
        The valid rows (blank lines ignored) and how many lines were skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    rows: list[dict[str, str]] = []
    skipped = 0
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                rows.append(_check_line(path, lineno, raw))
            except DataError as err:
                if on_error == "fail":
                    raise
                skipped += 1
                log.warning("skipping %s", err)
    if not rows:
        raise DataError(f"{path}: no valid examples (file is empty"
                        f"{f' after skipping {skipped} bad lines' if skipped else ''})")
    return rows, skipped


def is_eval_example(prompt: str, eval_fraction: float) -> bool:
    """Deterministic split by a hash of the prompt.

    Hashing the prompt (not the line number) keeps an example on the same side
    of the split when a file is reordered or appended to, on every machine.
    """
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction


def load_local_data(path: str | Path, eval_fraction: float = 0.1,
                    on_error: str = "fail") -> LocalData:
    """Load a node's JSONL file into train and eval ``datasets.Dataset`` objects."""
    rows, skipped = read_jsonl(path, on_error)
    train_rows = [r for r in rows if not is_eval_example(r["prompt"], eval_fraction)]
    eval_rows = [r for r in rows if is_eval_example(r["prompt"], eval_fraction)]
    if not train_rows or not eval_rows:
        raise DataError(f"{path}: {len(rows)} examples are too few for a train/eval split at "
                        f"eval fraction {eval_fraction}")
    return LocalData(Path(path), Dataset.from_list(train_rows), Dataset.from_list(eval_rows),
                     skipped)


def prompt_text(tokenizer: Any, prompt: str) -> str:
    """The text the model sees before its answer.

    The chat template is used when the tokenizer has one (Qwen instruct models
    and qwen2-tiny do), so training matches how the model is prompted later.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return f"{prompt}\n"


def encode_prompt(tokenizer: Any, prompt: str, max_len: int) -> tuple[list[int], list[bool]]:
    """Templated prompt ids and which of them are the user's own words.

    The loss router scores only the user's tokens: the chat template's tokens
    are the same in every domain, and an expert that trained more steps
    predicts them better, which would bias every routing decision towards it.
    A slow tokenizer (no offsets) or a template that rewrote the prompt marks
    every token.  Long prompts keep their last ``max_len`` tokens.
    """
    text = prompt_text(tokenizer, prompt)
    fast = bool(getattr(tokenizer, "is_fast", False))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=fast)
    ids = list(enc["input_ids"])
    lo = text.rfind(prompt) if prompt else -1  # the template wraps the prompt's last copy
    if fast and lo >= 0:
        content = [lo <= start < lo + len(prompt) for start, _ in enc["offset_mapping"]]
    else:
        content = [True] * len(ids)
    if not any(content[1:]):  # one token of prompt has no prediction to score: use them all
        content = [True] * len(ids)
    return ids[-max_len:], content[-max_len:]


def encode_example(tokenizer: Any, prompt: str, answer: str, max_len: int) -> dict[str, list[int]]:
    """Token ids, labels with the prompt masked out, and the prompt's length.

    ``labels`` carry only ``reference_code`` tokens: held-out loss measures
    answering, not echoing prompts.  ``prompt_len`` lets training give prompt
    tokens a small weight of their own (``train.prompt-loss-weight``).
    Truncation cuts the answer's tail: the prompt is what conditions it.
    """
    p_ids = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + eos
    p_ids = p_ids[: max_len // 2]  # keep room for at least half an answer
    ids = (p_ids + a_ids)[:max_len]
    labels = ([IGNORE_INDEX] * len(p_ids) + a_ids)[:max_len]
    return {"input_ids": ids, "labels": labels, "prompt_len": len(p_ids)}


def tokenize(dataset: Dataset, tokenizer: Any, max_len: int) -> Dataset:
    """Tokenise a split with ``datasets.map`` (cached in memory, no disk writes)."""
    return dataset.map(
        lambda row: encode_example(tokenizer, row["prompt"], row["reference_code"], max_len),
        remove_columns=list(FIELDS), keep_in_memory=True, load_from_cache_file=False,
    )
