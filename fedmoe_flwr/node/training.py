"""The client's local training loop and held-out evaluation.

One readable function each.  Training stops at a wall-clock budget (the
original FedMoE uploaded every ``sync_interval`` seconds) or a step cap,
whichever comes first, so a slow node sends smaller but on-time updates.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
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


def stretch_seconds(wall: float, cpu: float, speed_factor: float,
                    modelled: float = 0.0) -> float:
    """Sleep that makes a step last ``speed_factor`` times its compute time.

    Compute time is the step's CPU time, capped by its wall time (several torch
    threads give CPU time above wall time).  The step already took ``wall``
    seconds, which includes any wait for a core that another simulated node
    held; the sleep tops it up to ``speed_factor * compute``.  So a 4x slower
    node takes four times its work per step however busy the machine is, like a
    slow machine of its own, instead of being slowed once more by the others.

    ``modelled`` > 0 replaces the CPU time by a cost model of the step
    (``sim.seconds-per-token`` x its padded tokens).  CPU time itself grows by
    5-10% when the other cores are busy (shared caches and memory bandwidth),
    so with CPU time a node trained slower whenever its co-located peers worked
    more; a cost model makes each simulated node's pace its own.
    """
    compute = modelled if modelled > 0 else max(0.0, min(wall, cpu))
    return max(0.0, speed_factor * compute - max(0.0, wall))


def train_for_budget(model: Any, rows: list[dict[str, list[int]]], *, pad_id: int,
                     device: torch.device, batch_size: int, learning_rate: float,
                     time_budget: float, max_steps: int = 0, seed: int = 0,
                     speed_factor: float = 1.0, prompt_weight: float = 0.0,
                     seconds_per_token: float = 0.0) -> TrainResult:
    """Train the model's active adapter on tokenised rows until the budget ends.

    Parameters
    ----------
    model : peft.PeftModel
        Model whose active adapter is trainable (everything else frozen).
    rows : list of dict
        Tokenised examples with ``input_ids`` and ``labels``.
    time_budget : float
        Seconds of training; the step in progress when it runs out finishes.
    max_steps : int
        Step cap; 0 means only the time budget applies.
    seed : int
        Seeds the batch order, so a (version, node) pair is reproducible.
    speed_factor : float
        Simulated heterogeneity: each step is stretched to ``speed_factor``
        times its compute time by sleeping, like a slower GPU would be (see
        ``stretch_seconds``: the compute time is the step's CPU time, so the
        slowness does not depend on how busy the other simulated nodes are).
    prompt_weight : float
        Loss weight of prompt tokens relative to answer tokens (see
        ``weighted_lm_loss``); 0 trains on answers only.
    seconds_per_token : float
        Simulation: > 0 paces every step to ``speed_factor x seconds_per_token
        x padded tokens`` (even at speed 1), a compute cost that does not
        depend on what the other simulated nodes do (``stretch_seconds``).
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    model.train()
    t0 = time.perf_counter()
    steps = tokens = examples = padded = 0
    loss_sum = compute = 0.0
    order: list[int] = []
    while True:
        if not order:
            order = list(range(len(rows)))
            rng.shuffle(order)
        batch_rows = [rows[order.pop()] for _ in range(min(batch_size, len(order)))]
        step_start, step_cpu = time.perf_counter(), time.process_time()
        batch = collate(batch_rows, pad_id, device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        prompt_lens = [int(r.get("prompt_len", 0)) for r in batch_rows]  # 0: older caches
        loss = weighted_lm_loss(logits, batch["input_ids"],
                                token_weights(batch["labels"], prompt_lens, prompt_weight))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        steps += 1
        examples += len(batch_rows)
        tokens += int(batch["attention_mask"].sum())
        loss_sum += float(loss.detach())
        cpu, step_padded = time.process_time() - step_cpu, batch["input_ids"].numel()
        compute += cpu
        padded += step_padded
        if speed_factor > 1.0 or seconds_per_token > 0:
            time.sleep(stretch_seconds(time.perf_counter() - step_start, cpu, speed_factor,
                                       seconds_per_token * step_padded))
        if (max_steps and steps >= max_steps) or time.perf_counter() - t0 >= time_budget:
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
