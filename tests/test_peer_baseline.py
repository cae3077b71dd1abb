"""The peer baseline (strategy flower-fedavg): Flower's own FedAvg aggregation over one global
adapter, run by the same loop, intake and checkpoints as every strategy."""

import json

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

import strategies  # noqa: F401  (registers the built-in strategies)
from fedmoe_flwr.config import ConfigError, parse_run_config
from fedmoe_flwr.contract import GLOBAL, TrainInstruction
from fedmoe_flwr.server.artifacts import load_adapter_weights
from fedmoe_flwr.server.policy import Update, build_strategy
from tests.fake_grid import INIT, KEYS, make_node, run


def test_flower_fedavg_averages_the_global_adapter_by_examples(tmp_path):
    # Two nodes of different specialties both train "global"; each round
    # w <- (1 (w + 1) + 3 (w + 2)) / 4 = w + 1.75.
    seen = []

    def spy(node):
        def behave(msg):
            if msg.metadata.message_type == "train":
                seen.append(TrainInstruction.from_content(msg.content)[0])
            return node(msg)
        return behave

    loop, summary, events = run(tmp_path, {
        1: spy(make_node("python_expert", step=1.0, examples=1)),
        2: spy(make_node("sql_expert", step=2.0, examples=3))}, **{
        "strategy.name": "flower-fedavg", "run.max-updates": 4, "train.max-steps": 7})
    assert list(loop.experts) == [GLOBAL] and loop.federation.gateway is None
    final = load_adapter_weights(tmp_path / "run" / "experts" / GLOBAL)
    np.testing.assert_allclose(final[KEYS[0]], 3.5)
    np.testing.assert_allclose(final[KEYS[1]], 3.5)
    assert {i.adapter for i in seen} == {GLOBAL} and {i.max_steps for i in seen} == {7}
    assert [e["version"] for e in events if e["event"] == "version"] == [1, 2]
    assert summary["strategy"] == "flower-fedavg" and summary["experts"][GLOBAL]["version"] == 2
    assert sorted(summary["nodes"].values()) == ["python_expert", "sql_expert"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["updates"] == 4


def test_a_malformed_peer_reply_is_refused_and_counted_like_any_update(tmp_path):
    inner = make_node("sql_expert", step=2.0)
    state = {"n": 0}

    def hostile(msg):
        content, delay = inner(msg)
        if msg.metadata.message_type == "train":
            state["n"] += 1
            if state["n"] == 1:  # one reply in Flower's own layout, with a NaN
                bad = ArrayRecord({k: Array(np.full(v.shape, np.nan, np.float32))
                                   for k, v in INIT.items()})
                return RecordDict({"arrays": bad, "metrics": MetricRecord(
                    {"num-examples": 8})}), delay
        return content, delay

    loop, summary, _ = run(tmp_path, {1: make_node("python_expert"), 2: hostile}, **{
        "strategy.name": "flower-fedavg", "run.max-updates": 4})
    assert summary["rejected"] == {"malformed": 1}, summary["rejected"]
    assert np.isfinite(loop.experts[GLOBAL].weights[KEYS[0]]).all()


def test_the_peer_refuses_privacy_before_anything_runs():
    with pytest.raises(ConfigError, match="privacy.clip must be 0"):
        build_strategy(parse_run_config({"strategy.name": "flower-fedavg",
                                         "privacy.clip": 1.0}))
    assert build_strategy(parse_run_config({"strategy.name": "flower-fedavg",
                                            "comm.compression": "int8"})).name == "flower-fedavg"


def test_the_peer_uses_flowers_own_weighted_average():
    strategy = build_strategy(parse_run_config({"strategy.name": "flower-fedavg"}))
    a = {KEYS[0]: np.full((8, 64), 1.0, np.float32)}
    b = {KEYS[0]: np.full((8, 64), 5.0, np.float32)}
    np.testing.assert_allclose(strategy.average([(a, 3), (b, 1)])[KEYS[0]], 2.0)
    assert strategy.adapter_for("sql_expert") == GLOBAL
    up = Update(1, "sql_expert", GLOBAL, a, a, 0, 0, 3)
    assert strategy.select([], [], 0.0) == [] and not strategy.expects(1, GLOBAL)
    with pytest.raises(RuntimeError, match="no open round"):
        strategy.on_update(up, a, 0.0)


def test_no_specialty_may_be_called_global():
    with pytest.raises(ConfigError, match="global"):
        parse_run_config({"run.specialties": "python_expert,global"})
