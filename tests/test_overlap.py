"""train.overlap on the tiny model: the node trains between messages, adopts new weights
plus its in-flight progress (carry) or without it (replace), keeps its optimizer, and pauses
for any handler that uses the model."""

import time

import numpy as np
import pytest
import torch

from fedmoe_flwr.config import ConfigError, ModelConfig, parse_run_config
from fedmoe_flwr.node.adapters import get_adapter_weights
from fedmoe_flwr.node.data import load_local_data, tokenize
from fedmoe_flwr.node.model import ensure_adapter, load_base
from fedmoe_flwr.node.overlap import ContinuousTrainer, paused, trainer_for
from fedmoe_flwr.node.training import TrainSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    loaded = load_base(ModelConfig())
    ensure_adapter(loaded, "sql_expert", ModelConfig())
    rows = list(tokenize(load_local_data("data/sql.jsonl").train, loaded.tokenizer, 48))
    return loaded, rows


def _norm(a, b):
    return float(np.sqrt(sum(np.sum((a[k] - b[k]) ** 2) for k in a)))


def test_carry_continues_from_the_new_weights_plus_the_in_flight_progress(setup):
    loaded, rows = setup
    start = get_adapter_weights(loaded.peft_model, "sql_expert")
    trainer = ContinuousTrainer(loaded, "sql_expert", rows, TrainSpec(4, 1e-3, 0.4), "carry")
    try:
        first = trainer.exchange(start, version=0)
        assert first.steps >= 1 and first.base_version == 0 and first.in_flight_seconds == 0
        assert _norm(first.weights, start) > 0
        optimizer = trainer.optimizer
        time.sleep(0.6)  # the update travels; the thread trains on
        with paused():
            flying = get_adapter_weights(loaded.peft_model, "sql_expert")
        assert _norm(flying, first.weights) > 0  # progress while the update was away
        new = {k: v + 0.01 for k, v in first.weights.items()}  # the server's merged weights
        second = trainer.exchange(new, version=1)
        assert second.base_version == 1 and second.in_flight_seconds > 0.3
        assert second.base is new  # the progress is reported against what was adopted
        assert trainer.optimizer is optimizer  # AdamW moments survive messages
        carried = {k: new[k] + (flying[k] - first.weights[k]) for k in new}
        assert _norm(second.weights, new) >= 0.5 * _norm(carried, new)  # it kept the carry
    finally:
        trainer.stop()


def test_replace_drops_the_in_flight_progress(setup):
    loaded, rows = setup
    start = get_adapter_weights(loaded.peft_model, "sql_expert")
    trainer = ContinuousTrainer(loaded, "sql_expert", rows, TrainSpec(4, 1e-3, 0.3), "replace")
    try:
        trainer.exchange(start, version=0)
        time.sleep(0.4)
        second = trainer.exchange(start, version=1)
        assert second.in_flight_seconds == 0.0
    finally:
        trainer.stop()


def test_paused_holds_the_thread_and_idle_stops_it(setup):
    loaded, rows = setup
    start = get_adapter_weights(loaded.peft_model, "sql_expert")
    trainer = ContinuousTrainer(loaded, "sql_expert", rows, TrainSpec(4, 1e-3, 0.2),
                                idle_after=1.0)
    try:
        trainer.exchange(start, version=0)
        with paused():
            steps = trainer.steps
            time.sleep(0.3)
            assert trainer.steps == steps  # no step while a handler holds the model
        time.sleep(1.6)
        assert not trainer._alive()  # no message for idle_after: training paused
    finally:
        trainer.stop()


def test_a_new_run_stops_the_old_runs_trainers(setup):
    loaded, rows = setup
    made = []

    def make():
        made.append(ContinuousTrainer(loaded, "sql_expert", rows, TrainSpec(4, 1e-3, 0.2)))
        return made[-1]

    a = trainer_for((1, 7, "sql_expert"), make)
    assert trainer_for((1, 7, "sql_expert"), make) is a
    b = trainer_for((2, 7, "sql_expert"), make)
    assert b is not a and len(made) == 2
    b.stop()


def test_overlap_needs_a_time_budget_not_a_step_cap():
    with pytest.raises(ConfigError, match="train.max-steps = 0"):
        parse_run_config({"train.overlap": True, "train.max-steps": 5})


def test_a_waiting_handler_gets_the_model_before_the_next_step():
    # A lock is not fair: a training thread that releases it and retakes it at once could
    # starve a handler (seen in simulation: a node's reply held up for its whole run).
    # _give_way, called by the thread between two steps, returns only once every handler
    # that was waiting has taken the model.
    import threading

    from fedmoe_flwr.node import overlap

    got = threading.Event()

    def handler():
        with paused():
            got.set()

    with overlap._MODEL_LOCK:  # a step in progress
        thread = threading.Thread(target=handler)
        thread.start()
        deadline = time.monotonic() + 30
        while overlap._waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert overlap._waiting == 1 and not got.is_set()
    overlap._give_way()  # the step ended: the thread gives way before taking the lock again
    assert got.wait(timeout=30)
    thread.join(timeout=30)
    assert overlap._waiting == 0


def test_a_pacing_sleep_that_spans_the_round_trip_counts_as_in_flight_training(setup):
    # a simulated slow node sleeps after each step (its pacing is its work); a message that
    # arrives in the middle of such a sleep must see the sleep so far as in-flight training
    loaded, rows = setup
    start = get_adapter_weights(loaded.peft_model, "sql_expert")
    trainer = ContinuousTrainer(loaded, "sql_expert", rows, TrainSpec(4, 1e-3, 0.2), "carry",
                                after_step=lambda report: time.sleep(3.0))
    try:
        first = trainer.exchange(start, version=0)  # replies while the first sleep runs
        time.sleep(0.5)  # a round trip far shorter than the sleep, which is still running
        second = trainer.exchange(first.weights, version=1)
        assert second.in_flight_seconds >= 0.4, second
        assert second.in_flight_seconds <= second.train_seconds
        # the sleep is counted once: its part before the first reply is not counted again
        assert first.train_seconds + second.train_seconds <= 0.2 + 3.0 * (
            first.steps + second.steps) + 1.0
    finally:
        trainer.stop()
