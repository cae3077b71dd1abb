"""Red-team replies: a registered node that lies on purpose, to test the server's robust checks.

The robust checks (:mod:`fedmoe_flwr.server.guard`) are only worth what the
attacks they were tried against; a fake Grid tries them in unit tests, but a
deployment needs a real SuperNode, through TLS and authentication, that sends
well-formed updates which lie.  Node config ``red-team`` turns one on
(``--node-config "... red-team='cycle'"``); the ClientApp trains honestly and
then replaces the trained weights with the attack just before the reply is
encoded, so every check of form (keys, shapes, finite, version, norm bound)
still passes and only the robust checks stand between the lie and the expert:

- ``zeros``: every array all zeros: the update erases the expert (``keep`` 0);
- ``sign-flip``: ``base - (trained - base)``: the honest change reversed, with
  the honest change's norm, so only its direction (``cos``) gives it away;
- ``scale``: ``base + k (trained - base)``, ``k`` = :data:`SCALE_OVER` x
  ``robust.max-norm-ratio``, capped so the change stays under
  ``strategy.max-update-norm`` x the expert's norm (the form check passes,
  ``norm_ratio`` does not);
- ``replay``: the first weights this node ever sent for the adapter (its first
  reply goes out honest, since there is nothing to replay yet);
- ``cycle``: the first reply honest, then ``zeros``, ``replay``, ``sign-flip``
  and ``scale`` in turn: zeros and replay need no warm-up of the checks, so a
  node in this mode reaches ``robust.strikes`` refusals (quarantine) within a
  few replies.

The lie then goes through what an honest update goes through (privacy
clipping, compression), so with either on a replay is no longer an exact
repeat.  State (the weights to replay, the turn of the cycle) lives in this
module, keyed by the caller (the ClientApp uses run id and adapter), so it
lasts as long as the warm worker that holds it; a restarted worker starts
over.  Numpy only.  Never set ``red-team`` on a node you rely on: its updates
are meant to be refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable

import numpy as np

from fedmoe_flwr.weights import Weights

log = logging.getLogger("fedmoe.node")

ATTACKS = ("zeros", "sign-flip", "scale", "replay", "cycle")
CYCLE = ("zeros", "replay", "sign-flip", "scale")  # after one honest reply (replay's source)
SCALE_OVER = 2.0  # scale: k = this x robust.max-norm-ratio (honest changes measured <= 1.15x)
NORM_MARGIN = 0.9  # scale: at most this share of strategy.max-update-norm (the form check)

_SENT: dict[Hashable, Weights] = {}  # replay: the first weights sent, per key
_TURN: dict[Hashable, int] = {}  # cycle: replies sent so far, per key


def _norm(weights: Weights) -> float:
    return math.sqrt(sum(float(np.sum(np.square(v, dtype=np.float64))) for v in weights.values()))


def zeros(trained: Weights) -> Weights:
    """Every array of ``trained`` as zeros (same shapes and dtypes)."""
    return {k: np.zeros_like(v) for k, v in trained.items()}


def sign_flip(base: Weights, trained: Weights) -> Weights:
    """``base - (trained - base)``: the change reversed, its norm unchanged."""
    return {k: (base[k] - (trained[k] - base[k])).astype(trained[k].dtype) for k in trained}


def scale_factor(base: Weights, trained: Weights, max_update_norm: float,
                 max_norm_ratio: float) -> float:
    """``k`` of the scale attack: over the norm-ratio bound, under the norm bound.

    ``SCALE_OVER x max_norm_ratio`` (an honest change is about the median, so
    this is twice over the robust bound), capped at ``NORM_MARGIN x
    max_update_norm x max(||base||, 1) / ||trained - base||`` so the server's
    form check (:func:`fedmoe_flwr.merge.validation.update_norm_ratio`, with
    the expert's norm taken from the weights this node received) still passes.
    ``max_update_norm`` 0 means no norm bound.  1 for a zero change.
    """
    change = _norm({k: trained[k] - base[k] for k in trained})
    if change == 0.0:
        return 1.0
    k = SCALE_OVER * max_norm_ratio
    if max_update_norm > 0:
        k = min(k, NORM_MARGIN * max_update_norm * max(_norm(base), 1.0) / change)
    return k


def scale(base: Weights, trained: Weights, factor: float) -> Weights:
    """``base + factor (trained - base)``."""
    f = np.float32(factor)
    return {k: (base[k] + f * (trained[k] - base[k])).astype(trained[k].dtype) for k in trained}


def lie(mode: str, base: Weights, trained: Weights, *, max_update_norm: float,
        max_norm_ratio: float, key: Hashable) -> tuple[Weights, str]:
    """The weights a red-team node sends instead of ``trained``, and the attack used.

    Parameters
    ----------
    mode : str
        One of :data:`ATTACKS`.
    base, trained : Weights
        What the node received, and what it trained from it.
    max_update_norm, max_norm_ratio : float
        ``strategy.max-update-norm`` and ``robust.max-norm-ratio`` of the run,
        so ``scale`` lands between the two bounds.
    key : Hashable
        Whose replay source and cycle turn (the ClientApp passes run id and adapter).

    Returns
    -------
    (Weights, str)
        The reply's weights and the attack (``honest`` for the first reply of
        ``replay`` and ``cycle``, which later replies replay).
    """
    if mode not in ATTACKS:
        raise ValueError(f"unknown red-team attack {mode!r}; one of {ATTACKS}")
    attack = mode
    if mode == "cycle":
        turn = _TURN.get(key, 0)
        _TURN[key] = turn + 1
        attack = "honest" if turn == 0 else CYCLE[(turn - 1) % len(CYCLE)]
    if attack == "replay" and key not in _SENT:
        attack = "honest"  # nothing to replay yet: this reply is what later ones repeat
    if attack == "honest":
        sent = trained
    elif attack == "zeros":
        sent = zeros(trained)
    elif attack == "sign-flip":
        sent = sign_flip(base, trained)
    elif attack == "scale":
        sent = scale(base, trained, scale_factor(base, trained, max_update_norm,
                                                 max_norm_ratio))
    else:
        sent = _SENT[key]
    _SENT.setdefault(key, {k: np.array(v, copy=True) for k, v in sent.items()})
    log.warning("red-team node (node config 'red-team' = %r): this reply is %s, not the "
                "trained weights", mode, attack if attack != "honest" else
                "honest (kept for replay)")
    return sent, attack


def forget() -> None:
    """Drop every replay source and cycle turn (tests)."""
    _SENT.clear()
    _TURN.clear()
