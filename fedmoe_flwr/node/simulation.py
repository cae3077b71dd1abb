"""Simulation only: what makes one machine behave like a fleet of different ones.

Two behaviours wrap the real node path and never live inside it:

- **Slow nodes** (``sim.speed-factors``): after every real training step the
  node sleeps so the step lasts ``speed_factor`` times its compute
  (:func:`pacer`, the training loop's ``after_step`` hook).
- **Late nodes** (``sim.join-delays``): a node answers its first
  registration query only after a delay (:func:`join_late`).

A deployed node never sets either (its node config has no ``partition-id``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fedmoe_flwr.node.training import StepHook, StepReport

_joined: set[int] = set()  # nodes this process registered (a join delay applies once)


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


def pacer(speed_factor: float, seconds_per_token: float = 0.0,
          sleep: Callable[[float], None] = time.sleep) -> StepHook | None:
    """The training hook of a simulated node's speed, or None when it runs as it is.

    ``seconds_per_token`` > 0 paces every step to ``speed_factor x
    seconds_per_token x padded tokens`` (even at speed 1).
    """
    if speed_factor <= 1.0 and seconds_per_token <= 0:
        return None

    def after_step(step: StepReport) -> None:
        sleep(stretch_seconds(step.wall, step.cpu, speed_factor,
                              seconds_per_token * step.padded_tokens))

    return after_step


def join_late(node_id: int, delay: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Hold a simulated node's first registration reply back by ``delay`` seconds."""
    if delay and node_id not in _joined:
        sleep(delay)
    _joined.add(node_id)
