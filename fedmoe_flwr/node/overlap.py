"""Nodes that never stop training: the update travels while the next steps run.

With ``train.overlap`` on, a node's training runs on a thread of its own in
the process that serves the node across messages (the warm worker of a
deployed SuperNode).  A train message no longer starts training and waits
for it; it does three things:

1. hands the newest weights ``w_new`` to the training thread, which continues
   from them plus what it learned while the previous update was in flight:
   ``w <- w_new + (w_now - w_at_send)`` (``train.overlap-rule = carry``; the
   alternative ``replace`` drops that progress: ``w <- w_new``);
2. waits until the node has trained ``train.sync-interval`` seconds since its
   previous reply (not at all if the round trip already took that long);
3. replies with the progress since the weights it adopted in step 1, so the
   reply's base version is what the node really trained from and the carried
   progress is counted exactly once, in this update.

The thread keeps one AdamW for its life (its moments survive messages), and
stops stepping when no message came for ``idle_after`` seconds (the run
ended), so a finished run costs nothing.  Every other handler (registration,
evaluation) pauses it at a step boundary while it uses the model
(:func:`paused`).  Streaming DiLoCo (Douillard et al. 2025) overlaps the
outer update's communication with the next inner steps the same way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fedmoe_flwr.node.adapters import get_adapter_weights, set_adapter_weights
from fedmoe_flwr.node.model import freeze_a
from fedmoe_flwr.node.training import (
    Batches,
    StepHook,
    StepReport,
    TrainSpec,
    optimizer_for,
    optimizer_step,
)
from fedmoe_flwr.weights import Weights

log = logging.getLogger(__name__)
RULES = ("carry", "replace")
_MODEL_LOCK = threading.RLock()  # one user of the model at a time: a step, or a handler
# Handlers waiting for the model.  A lock is not fair: a training thread that releases it
# and takes it again at once can starve a waiting handler for as long as it trains, so the
# thread gives way (between two steps) while this is above zero.
_waiting = 0
_WAITING_LOCK = threading.Lock()
_TRAINERS: dict[tuple, ContinuousTrainer] = {}


@dataclass(frozen=True)
class Progress:
    """What one reply reports: the weights now, the base they are progress from, the work."""

    weights: Weights
    base: Weights
    base_version: int
    steps: int
    examples: int
    tokens: int
    loss: float
    train_seconds: float  # training time since the previous reply
    in_flight_seconds: float  # of which while the previous update travelled


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Hold every training thread at a step boundary (handlers that use the model)."""
    global _waiting
    with _WAITING_LOCK:
        _waiting += 1
    try:
        _MODEL_LOCK.acquire()
    finally:
        with _WAITING_LOCK:
            _waiting -= 1
    try:
        yield
    finally:
        _MODEL_LOCK.release()


def _give_way() -> None:
    """Between two steps: let every handler that waits for the model have it first."""
    while _waiting:
        time.sleep(0.001)


class ContinuousTrainer:
    """One node's adapter, trained without pause between messages."""

    def __init__(self, loaded: Any, adapter: str, rows: list, spec: TrainSpec,
                 rule: str = "carry", idle_after: float = 120.0,
                 prepare: Any = None, after_step: StepHook | None = None) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown overlap rule {rule!r}; valid: {RULES}")
        self.loaded, self.adapter, self.rows, self.spec = loaded, adapter, rows, spec
        self.rule, self.idle_after = rule, idle_after
        self.prepare = prepare or (lambda: None)  # e.g. FFA-LoRA's freeze of A
        self.after_step = after_step  # a simulated slow node's pacing (outside the lock)
        self.batches = Batches(len(rows), spec.batch_size, spec.seed)
        self.optimizer: Any = None
        self.params: list = []
        self.sent: Weights | None = None  # the weights of the previous reply
        self.base: Weights | None = None
        self.base_version = 0
        self.last_reply = time.monotonic()
        self.last_message = time.monotonic()
        self._zero_stats()
        self._paced_since: float | None = None  # a pacing sleep runs since then
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _zero_stats(self) -> None:
        self.steps = self.examples = self.tokens = 0
        self.loss_sum = self.train_seconds = self.in_flight = 0.0

    def exchange(self, received: Weights, version: int) -> Progress:
        """Adopt the newest weights, wait for the sync boundary, report the progress."""
        self.last_message = arrived = time.monotonic()
        with paused():
            self._pacing_until_now()
            self._adopt(received, version)
            in_flight = self.train_seconds  # trained since the previous reply, until now
        self._start()
        while time.monotonic() - self.last_reply < self.spec.time_budget or not self.steps:
            if not self._alive():
                raise RuntimeError(f"the training thread of {self.adapter!r} stopped")
            time.sleep(0.01)
        with paused():
            self._pacing_until_now()
            now = get_adapter_weights(self.loaded.peft_model, self.adapter)
            done = Progress(now, self.base, self.base_version, self.steps, self.examples,
                            self.tokens, self.loss_sum / max(self.steps, 1),
                            self.train_seconds, in_flight if self.sent is not None else 0.0)
            self.sent, self.last_reply = now, time.monotonic()
            self._zero_stats()
        log.debug("%s: reply after %.1fs (%.1fs trained while the update travelled)",
                  self.adapter, time.monotonic() - arrived, done.in_flight_seconds)
        return done

    def _adopt(self, received: Weights, version: int) -> None:
        """The new base: ``received`` plus (carry) the progress since the last reply."""
        model = self.loaded.peft_model
        weights = dict(received)
        if self.sent is not None and self.rule == "carry":
            now = get_adapter_weights(model, self.adapter)
            weights = {k: received[k] + (now[k] - self.sent[k]) for k in received}
        set_adapter_weights(model, self.adapter, weights)
        self.base, self.base_version = received, version
        if self.rule == "replace":  # the work since the last reply is dropped with its weights
            self._zero_stats()

    def _start(self) -> None:
        if self._alive():
            return
        with paused():
            self.loaded.peft_model.set_adapter(self.adapter)
            self.prepare()
            self.params, self.optimizer = optimizer_for(self.loaded.peft_model,
                                                        self.spec.learning_rate)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"fedmoe-train-{self.adapter}",
                                        daemon=True)
        self._thread.start()

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        model, tok = self.loaded.peft_model, self.loaded.tokenizer
        while not self._stop.is_set():
            if time.monotonic() - self.last_message > self.idle_after:
                log.info("%s: no message for %.0fs: training paused", self.adapter,
                         self.idle_after)
                return  # the next message starts a new thread (same optimizer)
            _give_way()
            with _MODEL_LOCK:
                t0, cpu0 = time.perf_counter(), time.process_time()
                if model.active_adapter != self.adapter:
                    model.set_adapter(self.adapter)  # a handler switched it
                    self.prepare()
                model.train()
                picked = [self.rows[i] for i in self.batches.next()]
                loss, real, padded = optimizer_step(model, picked, self.params,
                                                    self.optimizer, tok.pad_token_id,
                                                    self.loaded.device, self.spec.prompt_weight)
                self.steps += 1
                self.examples += len(picked)
                self.tokens += real
                self.loss_sum += loss
                self.train_seconds += time.perf_counter() - t0
            if self.after_step is not None:  # a simulated slow node: its sleep is its work
                with _MODEL_LOCK:
                    self._paced_since = s0 = time.perf_counter()
                self.after_step(StepReport(s0 - t0, time.process_time() - cpu0, padded))
                with _MODEL_LOCK:
                    self._pacing_until_now()
                    self._paced_since = None

    def _pacing_until_now(self) -> None:
        """Count a simulated node's pacing sleep so far as training (under the model lock).

        A sleep can straddle a message: the part before the message arrived is
        training while the previous update travelled, the rest belongs to the next
        reply.  Counted only at its end, a sleep that spans a short round trip made
        the in-flight time 0 although the node never stopped.
        """
        if self._paced_since is not None:
            now = time.perf_counter()
            self.train_seconds += now - self._paced_since
            self._paced_since = now

    def stop(self) -> None:
        """End the training thread (a new run, or the process shutting down)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


def configured_trainer(loaded: Any, adapter: str, rows: list, spec: TrainSpec, cfg: Any,
                       after_step: StepHook | None = None) -> ContinuousTrainer:
    """The node's training thread as the run configures it (rule, FFA-LoRA's frozen A).

    One construction for the deployed warm worker and the simulated node's actor
    (which adds its pacing as ``after_step``).  It idles after six sync intervals
    without a message (at least two minutes): the run has ended.
    """
    ffa = cfg.model.lora_variant == "ffa"
    return ContinuousTrainer(loaded, adapter, rows, spec, cfg.train.overlap_rule,
                             idle_after=max(120.0, 6 * spec.time_budget),
                             prepare=(lambda: freeze_a(loaded, adapter)) if ffa else None,
                             after_step=after_step)


def trainer_for(key: tuple, make: Any) -> ContinuousTrainer:
    """The node's trainer for ``key`` (run, node, adapter), made on first use.

    A key of another run stops that run's trainers first: one base model, one
    training thread per adapter of the current run.
    """
    for old in [k for k in _TRAINERS if k[0] != key[0]]:
        _TRAINERS.pop(old).stop()
    if key not in _TRAINERS:
        _TRAINERS[key] = make()
    return _TRAINERS[key]
