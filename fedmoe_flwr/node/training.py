"""The client's local training loop and held-out evaluation.

One readable function each.  Training stops at a wall-clock budget (the
original FedMoE uploaded every ``sync_interval`` seconds) or a step cap,
whichever comes first, so a slow node sends smaller but on-time updates.
Nothing here knows about simulation: pacing is a hook the simulation wraps
around the real loop.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fedmoe_flwr.node.data import IGNORE_INDEX


@dataclass(frozen=True)
class TrainResult:
    """What one local training call did (sent back as the train reply's metrics)."""

    loss: float
    steps: int
    tokens: int
    examples: int
    seconds: float
    compute_seconds: float = 0.0  # CPU time of the steps themselves (no simulated sleep)
    padded_tokens: int = 0  # batch x padded length, summed: what a step's compute scales with


def collate(rows: list[dict[str, Any]], pad_id: int,
            device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padded positions get label -100 and attention 0."""
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device),
            "attention_mask": mask.to(device)}


def token_weights(labels: torch.Tensor, prompt_lens: Sequence[int],
                  prompt_weight: float) -> torch.Tensor:
    """Per-position loss weight of the *predicted* token: answer 1, prompt ``prompt_weight``.

    ``labels`` is the padded ``(B, T)`` batch from :func:`collate`, so padding
    already reads as ignored; the first token (nothing predicts it) gets 0.
    """
    weights = (labels != IGNORE_INDEX).float()
    for i, n in enumerate(prompt_lens):
        weights[i, 1:n] = prompt_weight
    return weights


def weighted_lm_loss(logits: torch.Tensor, input_ids: torch.Tensor,
                     weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean next-token loss: ``sum(w * nll) / sum(w)`` over predicted tokens.

    With prompt weight 0 this is exactly the usual answer-only SFT loss; a small
    prompt weight also teaches each expert its domain's prompts, which is what
    lets the ``loss`` router compare experts on a new prompt (p(domain | x) is
    proportional to p(x | domain) when each expert models its domain's text).
    """
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.size(-1)), input_ids[:, 1:].reshape(-1),
        reduction="none").view(input_ids.size(0), -1)  # (B, T-1)
    w = weights[:, 1:]
    return (nll * w).sum() / w.sum().clamp(min=1e-8)


@dataclass(frozen=True)
class TrainSpec:
    """How one train message trains: batch, rate, budget, step cap, seed, prompt weight.

    ``time_budget`` is seconds of training (the step in progress when it runs
    out finishes); ``max_steps`` 0 means only the budget applies; ``seed``
    fixes the batch order, so a (version, node) pair is reproducible;
    ``prompt_weight`` weighs prompt tokens against answer tokens (see
    :func:`weighted_lm_loss`; 0 trains on answers only).
    """

    batch_size: int
    learning_rate: float
    time_budget: float
    max_steps: int = 0
    seed: int = 0
    prompt_weight: float = 0.0


@dataclass(frozen=True)
class StepReport:
    """What one optimizer step cost, for a hook that watches training (simulated pacing)."""

    wall: float  # seconds the step took
    cpu: float  # CPU seconds of this process during it
    padded_tokens: int  # batch x padded length: what its compute scales with


StepHook = Callable[[StepReport], None]


class Batches:
    """Shuffled batches of row indices, reshuffled each epoch with one seeded RNG."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.rng = n, batch_size, random.Random(seed)
        self.order: list[int] = []

    def next(self) -> list[int]:
        """The next batch of row indices (a new shuffle when the epoch is used up)."""
        if not self.order:
            self.order = list(range(self.n))
            self.rng.shuffle(self.order)
        return [self.order.pop() for _ in range(min(self.batch_size, len(self.order)))]


def optimizer_for(model: Any, learning_rate: float) -> tuple[list, torch.optim.Optimizer]:
    """The trainable parameters (the active adapter, less what is frozen) and their AdamW."""
    params = [p for p in model.parameters() if p.requires_grad]
    return params, torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)


def optimizer_step(model: Any, rows: list[dict[str, Any]], params: list,
                   optimizer: torch.optim.Optimizer, pad_id: int, device: torch.device,
                   prompt_weight: float) -> tuple[float, int, int]:
    """One optimizer step on one batch: ``(loss, real tokens, padded tokens)``."""
    loss, real, padded = _step(model, rows, pad_id, device, prompt_weight)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss, real, padded


def _step(model: Any, rows: list[dict[str, Any]], pad_id: int, device: torch.device,
          prompt_weight: float) -> tuple[float, int, int]:
    """Forward and backward of one batch: (loss, real tokens, padded tokens)."""
    batch = collate(rows, pad_id, device)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    prompt_lens = [int(r.get("prompt_len", 0)) for r in rows]  # 0: older caches
    loss = weighted_lm_loss(logits, batch["input_ids"],
                            token_weights(batch["labels"], prompt_lens, prompt_weight))
    loss.backward()
    return float(loss.detach()), int(batch["attention_mask"].sum()), batch["input_ids"].numel()


def train_for_budget(model: Any, rows: list[dict[str, list[int]]], *, pad_id: int,
                     device: torch.device, spec: TrainSpec,
                     after_step: StepHook | None = None) -> TrainResult:
    """Train the model's active adapter on tokenised rows until the budget ends.

    Parameters
    ----------
    model : peft.PeftModel
        Model whose active adapter is trainable (everything else frozen).
    rows : list of dict
        Tokenised examples with ``input_ids`` and ``labels``.
    spec : TrainSpec
        Batch size, learning rate, time budget, step cap, seed, prompt weight.
    after_step : callable, optional
        Called after every optimizer step with what it cost; the real path
        passes none.  Simulation passes its pacing here
        (:mod:`fedmoe_flwr.node.simulation`), so a simulated slow node's
        sleeps wrap the real loop instead of living inside it.
    """
    torch.manual_seed(spec.seed)
    batches = Batches(len(rows), spec.batch_size, spec.seed)
    params, optimizer = optimizer_for(model, spec.learning_rate)
    model.train()
    t0 = time.perf_counter()
    steps = tokens = examples = padded = 0
    loss_sum = compute = 0.0
    while True:
        picked = [rows[i] for i in batches.next()]
        step_start, step_cpu = time.perf_counter(), time.process_time()
        loss, real, step_padded = optimizer_step(model, picked, params, optimizer, pad_id,
                                                 device, spec.prompt_weight)
        cpu = time.process_time() - step_cpu
        steps, examples, tokens, padded = steps + 1, examples + len(picked), tokens + real, \
            padded + step_padded
        loss_sum, compute = loss_sum + loss, compute + cpu
        if after_step is not None:
            after_step(StepReport(time.perf_counter() - step_start, cpu, step_padded))
        if (spec.max_steps and steps >= spec.max_steps) or \
                time.perf_counter() - t0 >= spec.time_budget:
            break
    return TrainResult(loss=loss_sum / steps, steps=steps, tokens=tokens, examples=examples,
                       seconds=time.perf_counter() - t0, compute_seconds=compute,
                       padded_tokens=padded)


@torch.no_grad()
def evaluate_loss(model: Any, rows: list[dict[str, list[int]]], *, pad_id: int,
                  device: torch.device, batch_size: int = 16) -> float:
    """Mean per-token loss of the active adapter on answer tokens only."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = collate(rows[start:start + batch_size], pad_id, device)
        logits = model(input_ids=batch["input_ids"],
                       attention_mask=batch["attention_mask"]).logits  # (B, T, V)
        shift_logits = logits[:, :-1].float()
        shift_labels = batch["labels"][:, 1:]
        loss = torch.nn.functional.cross_entropy(
            shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
            ignore_index=IGNORE_INDEX, reduction="sum")
        total += float(loss)
        count += int((shift_labels != IGNORE_INDEX).sum())
    model.train()
    return total / count if count else math.nan
