"""The training objective: answer tokens weigh 1, prompt tokens train.prompt-loss-weight."""

import math

import pytest
import torch

from fedmoe_flwr.node.data import IGNORE_INDEX
from fedmoe_flwr.node.training import collate, token_weights, weighted_lm_loss

ROW = {"input_ids": [5, 6, 7, 8], "labels": [IGNORE_INDEX, IGNORE_INDEX, 7, 8], "prompt_len": 2}


def test_token_weights_hand_computed():
    short = {"input_ids": [5, 9], "labels": [IGNORE_INDEX, 9], "prompt_len": 1}
    batch = collate([ROW, short], pad_id=0, device=torch.device("cpu"))
    w = token_weights(batch["labels"], [2, 1], prompt_weight=0.25)
    # Row 1: token 0 is never predicted; token 1 is prompt; 2, 3 are answer.
    # Row 2: one prompt token (never predicted), one answer token, then padding.
    assert w.tolist() == [[0.0, 0.25, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]]
    # Rows without prompt_len (older caches, length 0) train on their labels only.
    assert token_weights(_labels(ROW), [0], 0.25).tolist() == [[0.0, 0.0, 1.0, 1.0]]


def _labels(row: dict) -> torch.Tensor:
    return torch.tensor([row["labels"]])


def _logits_with_nll(targets: list[int], nlls: list[float], vocab: int = 10) -> torch.Tensor:
    """Logits (1, T, V) whose next-token NLL at step t is exactly nlls[t] for targets[t+1]."""
    logits = torch.zeros(1, len(targets), vocab)
    for t, nll in enumerate(nlls):
        # Two-level logits: p(target) = e^a / (e^a + (V-1)); solve for a.
        p = math.exp(-nll)
        logits[0, t, targets[t + 1]] = math.log(p * (vocab - 1) / (1 - p))
    return logits


@pytest.mark.parametrize("w, expected", [
    (0.0, (1.0 + 3.0) / 2),                      # answer-only SFT loss
    (0.5, (0.5 * 2.0 + 1.0 + 3.0) / 2.5),         # prompt token at half weight
    (1.0, (2.0 + 1.0 + 3.0) / 3),                 # plain language modelling
])
def test_weighted_loss_hand_computed(w, expected):
    logits = _logits_with_nll(ROW["input_ids"], [2.0, 1.0, 3.0])
    ids = torch.tensor([ROW["input_ids"]])
    loss = weighted_lm_loss(logits, ids, token_weights(_labels(ROW), [2], w))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_zero_prompt_weight_equals_the_usual_masked_loss():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 10)
    ids = torch.tensor([ROW["input_ids"]])
    labels = torch.tensor([ROW["labels"]])
    usual = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:],
                                              ignore_index=IGNORE_INDEX)
    ours = weighted_lm_loss(logits, ids, token_weights(_labels(ROW), [2], 0.0))
    assert float(ours) == pytest.approx(float(usual), rel=1e-6)
