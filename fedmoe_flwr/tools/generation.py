"""Batched greedy generation with one adapter, for judging many prompts at once.

Generating one answer at a time leaves a CPU mostly idle between small matrix
products; a batch of prompts (left-padded, so every row's next token sits in
the last column) shares each forward pass.  Answers that are code stop at the
end of their first fenced block: what follows is prose the judge ignores, and
on a small model it is often most of the tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from fedmoe_flwr.node.data import prompt_text

FENCE = "```"


class _FenceStop(StoppingCriteria):
    """Stops a row once its answer has closed its first fenced code block.

    A transformers ``StoppingCriteria``: returns one bool per row, so finished
    rows stop while the others go on.
    """

    def __init__(self, tokenizer: Any, prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        new = input_ids[:, self.prompt_width:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return torch.tensor([t.count(FENCE) >= 2 for t in texts], device=input_ids.device)


@contextmanager
def _left_padding(tokenizer: Any) -> Any:
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield
    finally:
        tokenizer.padding_side = side


@torch.no_grad()
def generate_batch(loaded: Any, prompts: Sequence[str], *, max_new_tokens: int = 192,
                   batch_size: int = 8, stop_after_code: bool = True,
                   max_prompt_tokens: int = 1024) -> list[str]:
    """Greedy answers of the model's active adapter to ``prompts``, in order.

    ``loaded`` is a :class:`~fedmoe_flwr.node.model.LoadedModel`; the caller
    chooses the adapter (``set_adapter``, or ``disable_adapter()`` for the base).
    Prompts are chat-templated as the nodes trained on them.
    """
    tok, model = loaded.tokenizer, loaded.peft_model
    model.eval()
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        texts = [prompt_text(tok, p) for p in prompts[start:start + batch_size]]
        with _left_padding(tok):
            batch = tok(texts, return_tensors="pt", padding=True, truncation=True,
                        max_length=max_prompt_tokens, add_special_tokens=False)
        batch = batch.to(loaded.device)
        width = batch["input_ids"].shape[1]
        stop = StoppingCriteriaList([_FenceStop(tok, width)]) if stop_after_code else None
        ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             temperature=None, top_p=None, top_k=None,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                             stopping_criteria=stop)
        out += [t.strip() for t in tok.batch_decode(ids[:, width:], skip_special_tokens=True)]
    return out
