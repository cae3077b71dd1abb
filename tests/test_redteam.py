"""The red-team node's attacks (node config ``red-team``), by hand, and what the guard makes of
them: each lie passes the form checks and is refused by the robust check meant for it."""

import logging
import math

import numpy as np
import pytest

from fedmoe_flwr.config import ConfigError, RobustConfig, parse_run_config
from fedmoe_flwr.merge.robust import difference
from fedmoe_flwr.merge.validation import UpdateRejected, update_norm_ratio
from fedmoe_flwr.node import redteam
from fedmoe_flwr.node.redteam import lie, scale_factor, sign_flip, zeros
from fedmoe_flwr.node.settings import node_settings
from fedmoe_flwr.server.guard import UpdateGuard

BASE = {"a": np.array([1.0, 2.0], np.float32), "b": np.array([[0.0, 0.0]], np.float32)}
TRAINED = {"a": np.array([2.0, 2.0], np.float32), "b": np.array([[1.0, 0.0]], np.float32)}
# change = a: [1, 0], b: [[1, 0]]; ||change|| = sqrt(2), ||BASE|| = sqrt(5)
BOUNDS = {"max_update_norm": 10.0, "max_norm_ratio": 3.0}


@pytest.fixture(autouse=True)
def _fresh():
    redteam.forget()
    yield
    redteam.forget()


def _eq(got, want):
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6)
        assert got[k].dtype == want[k].dtype


def test_zeros_and_sign_flip_by_hand():
    _eq(zeros(TRAINED), {"a": np.zeros(2, np.float32), "b": np.zeros((1, 2), np.float32)})
    # base - (trained - base): a [1 - 1, 2 - 0], b [0 - 1, 0]
    _eq(sign_flip(BASE, TRAINED), {"a": np.array([0.0, 2.0], np.float32),
                                   "b": np.array([[-1.0, 0.0]], np.float32)})


def test_scale_lands_between_the_two_bounds():
    # 2 x max-norm-ratio = 6; the norm bound allows 0.9 * 10 * sqrt(5) / sqrt(2) = 14.2
    assert scale_factor(BASE, TRAINED, 10.0, 3.0) == pytest.approx(6.0)
    sent, attack = lie("scale", BASE, TRAINED, key=1, **BOUNDS)
    assert attack == "scale"
    _eq(sent, {"a": np.array([7.0, 2.0], np.float32), "b": np.array([[6.0, 0.0]], np.float32)})
    # a tight norm bound caps k: 0.9 * 2 * sqrt(5) / sqrt(2) = 2.846
    assert scale_factor(BASE, TRAINED, 2.0, 3.0) == pytest.approx(1.8 * math.sqrt(2.5))
    assert scale_factor(BASE, TRAINED, 0.0, 3.0) == pytest.approx(6.0)  # 0: no norm bound
    # an expert smaller than 1 counts as 1 (the server's floor): 0.9 * 10 * 1 / 5 = 1.8
    small, far = {"a": np.array([0.3, 0.4], np.float32)}, {"a": np.array([3.3, 4.4], np.float32)}
    assert scale_factor(small, far, 10.0, 3.0) == pytest.approx(1.8)
    assert scale_factor(BASE, BASE, 10.0, 3.0) == 1.0  # no change, nothing to scale
    for bound in (10.0, 2.0):  # the server's form check passes either way
        out = redteam.scale(BASE, TRAINED, scale_factor(BASE, TRAINED, bound, 3.0))
        assert update_norm_ratio(out, BASE, BASE) < bound


def test_replay_sends_the_first_reply_again_per_key():
    first, attack = lie("replay", BASE, TRAINED, key="k", **BOUNDS)
    assert attack == "honest" and first is TRAINED  # nothing to replay yet
    later = {k: v + 5 for k, v in TRAINED.items()}
    again, attack = lie("replay", TRAINED, later, key="k", **BOUNDS)
    assert attack == "replay"
    _eq(again, TRAINED)
    other, attack = lie("replay", BASE, later, key="other", **BOUNDS)  # another run/adapter
    assert attack == "honest" and other is later


def test_cycle_goes_honest_then_zeros_replay_sign_flip_scale(caplog):
    caplog.set_level(logging.WARNING, "fedmoe.node")
    order = [lie("cycle", BASE, TRAINED, key=7, **BOUNDS)[1] for _ in range(6)]
    assert order == ["honest", "zeros", "replay", "sign-flip", "scale", "zeros"]
    assert len([r for r in caplog.records if "red-team" in r.getMessage()]) == 6


def test_unknown_attack_is_refused():
    with pytest.raises(ValueError, match="unknown red-team attack"):
        lie("nonsense", BASE, TRAINED, key=0, **BOUNDS)


NODE = {"specialty": "python_expert", "data-path": "data/python.jsonl"}


def test_node_config_red_team_is_parsed_and_checked():
    cfg = parse_run_config({})
    assert node_settings(NODE, cfg).red_team == ""
    assert node_settings({**NODE, "red-team": ""}, cfg).red_team == ""
    for mode in redteam.ATTACKS:
        assert node_settings({**NODE, "red-team": mode}, cfg).red_team == mode
    assert node_settings({"partition-id": 0, "red-team": "zeros"}, cfg).red_team == "zeros"
    with pytest.raises(ConfigError, match="node config 'red-team' must be one of"):
        node_settings({**NODE, "red-team": "wipe"}, cfg)


def test_every_lie_is_refused_by_the_check_meant_for_it():
    # An expert that moved along one honest direction three times (the guard's warm-up).
    rng = np.random.default_rng(0)
    step = {"a": np.full(64, 0.01, np.float32)}
    expert = {"a": rng.normal(0, 1, 64).astype(np.float32)}
    guard = UpdateGuard(RobustConfig())
    for _ in range(3):
        new = {"a": expert["a"] + step["a"] + rng.normal(0, 1e-3, 64).astype(np.float32)}
        guard.judge("e", new, difference(new, expert), expert)
        guard.accept("e", new, difference(new, expert))
        expert = new
    honest = {"a": expert["a"] + step["a"]}
    first, _ = lie("cycle", expert, honest, key="e", **BOUNDS)  # honest: accepted
    guard.judge("e", first, difference(first, expert), expert)
    guard.accept("e", first, difference(first, expert))
    expert = first
    honest = {"a": expert["a"] + step["a"]}
    reasons = []
    for _ in range(4):  # zeros, replay, sign-flip, scale
        sent, _ = lie("cycle", expert, honest, key="e", **BOUNDS)
        assert update_norm_ratio(sent, expert, expert) <= BOUNDS["max_update_norm"]
        with pytest.raises(UpdateRejected) as err:
            guard.judge("e", sent, difference(sent, expert), expert)
        reasons.append(err.value.reason)
    assert reasons == ["erases-expert", "replay", "against-expert", "outlier-norm"]
