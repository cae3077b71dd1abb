"""Staleness functions for asynchronous aggregation (pure math, no flwr).

Staleness ``tau`` is measured in expert versions: ``tau = current_version -
base_version``, the number of updates merged into the expert since the node
received the weights it trained on.  ``s(tau)`` scales the server's mixing
weight down for stale updates (Xie et al. 2019, "Asynchronous Federated
Optimization", section 5.2); every function has ``s(0) = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

StalenessFn = Callable[[int], float]


def constant() -> StalenessFn:
    """``s(tau) = 1``: ignore staleness (plain asynchronous SGD mixing)."""
    return lambda tau: 1.0


def polynomial(a: float) -> StalenessFn:
    """``s(tau) = (tau + 1) ** -a``: smooth decay, the FedAsync paper's default."""
    return lambda tau: (tau + 1.0) ** (-a)


def hinge(a: float, b: int) -> StalenessFn:
    """``s(tau) = 1`` if ``tau <= b`` else ``1 / (a (tau - b) + 1)``: tolerate small lag."""
    return lambda tau: 1.0 if tau <= b else 1.0 / (a * (tau - b) + 1.0)


def exponential(decay: float) -> StalenessFn:
    """``s(tau) = decay ** tau``: the original FedMoE rule."""
    return lambda tau: math.pow(decay, tau)


# Run-config name -> builder from (a, b, decay); the one list of valid names.
_BUILDERS: dict[str, Callable[[float, int, float], StalenessFn]] = {
    "constant": lambda a, b, decay: constant(),
    "polynomial": lambda a, b, decay: polynomial(a),
    "hinge": lambda a, b, decay: hinge(a, b),
    "exponential": lambda a, b, decay: exponential(decay),
}
STALENESS_FUNCTIONS = tuple(_BUILDERS)


def make_staleness(name: str, *, a: float = 0.5, b: int = 4, decay: float = 0.5) -> StalenessFn:
    """Build a staleness function by its run-config name."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown staleness function {name!r}; valid: "
                         f"{', '.join(STALENESS_FUNCTIONS)}")
    return _BUILDERS[name](a, b, decay)
