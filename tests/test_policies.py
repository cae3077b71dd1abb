"""Each strategy's policy methods on plain values (as Flower tests ``aggregate_train`` on
scripted replies), and a strategy with a parameter added as one class plus one register line."""

from dataclasses import dataclass

import numpy as np
import pytest

import strategies  # noqa: F401  (registers the built-in strategies)
from fedmoe_flwr.config import ConfigError, Section, parse_run_config, setting
from fedmoe_flwr.merge.rules import fedasync_delta
from fedmoe_flwr.server.policy import (
    Member,
    Outcome,
    Strategy,
    Update,
    build_strategy,
    register,
    strategy_names,
)
from strategies import FedAsync, FedAvg, FedBuff
from strategies.fedasync import FedAsyncParams
from strategies.fedavg import FedAvgParams
from strategies.fedbuff import FedBuffParams
from tests.fake_grid import make_node, run

K = "m.lora_A.weight"


def w(x):
    return {K: np.full((2, 2), x, np.float32)}


def update(node, base, trained, *, staleness=0, examples=4, adapter="sql_expert"):
    return Update(node, adapter, adapter, w(trained), w(base), 0, staleness, examples)


# ------------------------------------------------------------------ FedAsync
def test_fedasync_fresh_update_counts_fully_by_default():
    out = FedAsync().on_update(update(1, 0.0, 2.0), w(0.0), now=0.0)
    assert out.status == "merged" and out.mixing == 1.0
    np.testing.assert_array_equal(out.weights[K], 2.0)


def test_fedasync_stale_update_by_the_delta_rule_hand_computed():
    # tau 3, alpha 0.6, polynomial a 0.5: a = 0.6 / sqrt(4) = 0.3; w = 5 + 0.3 (2 - 1) = 5.3
    out = FedAsync().on_update(update(1, 1.0, 2.0, staleness=3), w(5.0), now=0.0)
    assert out.mixing == pytest.approx(0.3)
    np.testing.assert_allclose(out.weights[K], 5.3, rtol=1e-6)


def test_fedasync_mix_rule_is_the_papers():
    # w = (1 - 0.3) 5 + 0.3 * 2 = 4.1 (the old base pulls the expert back)
    params = FedAsyncParams(stale_rule="mix")
    out = FedAsync(params).on_update(update(1, 1.0, 2.0, staleness=3), w(5.0), now=0.0)
    np.testing.assert_allclose(out.weights[K], 4.1, rtol=1e-6)


def test_fedasync_takes_any_staleness_function():
    strategy = FedAsync(staleness_fn=lambda tau: 0.5 ** tau)
    out = strategy.on_update(update(1, 0.0, 1.0, staleness=2), w(0.0), now=0.0)
    assert out.mixing == pytest.approx(0.6 * 0.25)
    np.testing.assert_allclose(out.weights[K], fedasync_delta(w(0.0), w(1.0), w(0.0),
                                                              0.15)[K])


# ------------------------------------------------------------------ FedBuff
def test_fedbuff_buffers_k_deltas_then_steps_hand_computed():
    strategy = FedBuff(FedBuffParams(buffer_size=2, server_lr=1.0))
    first = strategy.on_update(update(1, 0.0, 1.0), w(0.0), now=0.0)
    assert first == Outcome(None, 1.0, "buffered")
    # second: delta 3 at tau 3 (weight 1/sqrt(4) = 0.5); w = 10 + (1 * 1 + 0.5 * 3) / 2 = 11.25
    second = strategy.on_update(update(2, 0.0, 3.0, staleness=3), w(10.0), now=0.0)
    assert second.status == "merged" and second.mixing == pytest.approx(0.5)
    np.testing.assert_allclose(second.weights[K], 11.25)
    assert strategy.buffers["sql_expert"] == []  # emptied by the step


def test_fedbuff_keeps_one_buffer_per_adapter():
    strategy = FedBuff(FedBuffParams(buffer_size=2))
    strategy.on_update(update(1, 0.0, 1.0, adapter="a"), w(0.0), now=0.0)
    out = strategy.on_update(update(2, 0.0, 1.0, adapter="b"), w(0.0), now=0.0)
    assert out.weights is None and len(strategy.buffers["a"]) == len(strategy.buffers["b"]) == 1


# ------------------------------------------------------------------ FedAvg
def test_fedavg_round_selects_waits_and_averages_by_examples():
    strategy = FedAvg(FedAvgParams(sync_scope="specialty"))
    members = [Member(1, "sql_expert", "sql_expert"), Member(2, "sql_expert", "sql_expert")]
    assert strategy.select(members, members, now=0.0) == members
    assert strategy.select(members, members, now=1.0) == []  # the round is open
    assert strategy.on_update(update(1, 0.0, 2.0, examples=1), w(0.0), 2.0).status == "buffered"
    assert strategy.on_tick(3.0, {"sql_expert": 0}) == []  # node 2 still owes its reply
    strategy.on_update(update(2, 0.0, 6.0, examples=3), w(0.0), 4.0)
    (merge,) = strategy.on_tick(5.0, {"sql_expert": 0})
    assert merge.adapter == "sql_expert"
    np.testing.assert_allclose(merge.weights[K], (1 * 2 + 3 * 6) / 4)  # = 5
    assert not strategy.expects(1, "sql_expert")  # the round closed


def test_fedavg_timeout_closes_a_round_without_the_missing_node():
    strategy = FedAvg(FedAvgParams(round_timeout=10.0))
    members = [Member(1, "a", "a"), Member(2, "b", "b")]
    strategy.select(members, members, now=0.0)
    strategy.on_update(update(1, 0.0, 1.0, adapter="a"), w(0.0), 1.0)
    assert strategy.on_tick(9.0, {"a": 0, "b": 0}) == []
    (merge,) = strategy.on_tick(10.0, {"a": 0, "b": 0})
    assert merge.adapter == "a" and not strategy.expects(2, "b")  # node 2 is late now


def test_fedavg_a_missing_node_no_longer_holds_the_round():
    strategy = FedAvg()
    members = [Member(1, "a", "a"), Member(2, "a", "a")]
    strategy.select(members, members, now=0.0)
    strategy.on_update(update(1, 0.0, 1.0, adapter="a"), w(0.0), 1.0)
    strategy.on_missing(2)
    assert [m.adapter for m in strategy.on_tick(2.0, {"a": 0})] == ["a"]


# ------------------------------------------------------------------ a new strategy
@dataclass(frozen=True)
class HalfwayParams(Section):
    """The one parameter of a test strategy."""

    share: float = setting(0.5, "strategy.halfway.share", "share of the client's weights",
                           gt=0, le=1)


class Halfway(Strategy):
    """Moves the expert ``share`` of the way to every update (a test strategy)."""

    name = "halfway"
    Params = HalfwayParams

    def on_update(self, update: Update, current, now: float) -> Outcome:
        s = self.params.share
        return Outcome({k: (1 - s) * current[k] + s * update.weights[k] for k in current}, s)


register(Halfway)  # the one registry line; the class above is the one file


def test_a_strategy_with_a_parameter_is_one_class_and_one_register_line(tmp_path):
    assert "halfway" in strategy_names()
    strategy = build_strategy(parse_run_config({"strategy.name": "halfway",
                                                "strategy.halfway.share": 0.25}))
    assert isinstance(strategy, Halfway) and strategy.params.share == 0.25
    with pytest.raises(ConfigError, match=r"'strategy.halfway.share' must be in \(0, 1\]"):
        build_strategy(parse_run_config({"strategy.name": "halfway",
                                         "strategy.halfway.share": 2.0}))
    # and it runs in the loop: one node adding 1 per update, w_n = 0.25 (w_{n-1} + 1) + ...
    loop, summary, _ = run(tmp_path, {1: make_node("python_expert")}, **{
        "strategy.name": "halfway", "strategy.halfway.share": 0.25, "run.max-updates": 2,
        "run.specialties": "python_expert"})
    # w1 = 0.75 * 0 + 0.25 * 1 = 0.25; w2 = 0.75 * 0.25 + 0.25 * 1.25 = 0.5
    np.testing.assert_allclose(loop.experts["python_expert"].weights[
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"], 0.5)
    assert summary["strategy"] == "halfway"


def test_a_strategy_must_namespace_its_keys():
    @dataclass(frozen=True)
    class Loose(Section):
        x: float = setting(1.0, "strategy.x", "a key outside strategy.<name>.", gt=0, le=2)

    class Bad(Strategy):
        name = "bad"
        Params = Loose

        def on_update(self, update, current, now):
            raise NotImplementedError

    with pytest.raises(ValueError, match="must start with 'strategy.bad.'"):
        register(Bad)
