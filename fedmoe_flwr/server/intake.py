"""Reply intake: every reply is parsed by the contract and its weights judged here, before use.

A node is not trusted: a reply can miss records or keys, carry NaN where an
integer belongs, arrays of the wrong shape, an absurd example count or an
update a million times larger than the expert.  Each check raises
:class:`UpdateRejected` with a short countable reason and a detail a person can
act on; :func:`guarded` turns a :class:`~fedmoe_flwr.contract.ContractError` and
any other exception a malformed reply provokes into a rejection too, so no
reply can stop the server loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fedmoe_flwr.contract import ContractError
from fedmoe_flwr.merge.gateway import SUFFIX_A, SUFFIX_B, lora_modules
from fedmoe_flwr.merge.validation import UpdateRejected, check_weights, update_norm_ratio
from fedmoe_flwr.weights import Weights

T = TypeVar("T")


def guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a parser or check; any failure becomes an :class:`UpdateRejected`."""
    try:
        return fn(*args, **kwargs)
    except UpdateRejected:
        raise
    except ContractError as err:
        raise UpdateRejected(err.reason, err.detail) from None
    except Exception as err:  # a hostile reply must never reach the loop as a crash
        raise UpdateRejected("malformed", f"{type(err).__name__}: {err}") from None


def check_initial_adapter(weights: Weights | None, rank: int, like: Weights | None) -> Weights:
    """An initial adapter must be LoRA pairs of the run's rank, finite, shaped like the others."""
    if weights is None:
        raise UpdateRejected("malformed", "registration without an initial adapter")
    if like is not None:
        check_weights(like, weights)
        return weights
    check_weights(weights, weights)
    for module in lora_modules(weights):
        a, b = weights[module + SUFFIX_A], weights[module + SUFFIX_B]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != rank or b.shape[1] != rank:
            raise UpdateRejected("wrong-shape", f"{module}: A {a.shape}, B {b.shape} are not "
                                 f"LoRA factors of rank {rank}")
    return weights


def check_norm(update: Weights, base: Weights, current: Weights, max_ratio: float) -> None:
    """Refuse an update whose change is over ``max_ratio`` times the expert's norm."""
    if max_ratio <= 0:
        return
    ratio = update_norm_ratio(update, base, current)
    if not ratio <= max_ratio:
        raise UpdateRejected("too-large", f"update norm is {ratio:.3g}x the expert's, over "
                             f"strategy.max-update-norm = {max_ratio:g}")
