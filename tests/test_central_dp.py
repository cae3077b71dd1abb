"""Central DP (privacy.mode = central): nodes clip, the trusted server clips again and adds
N(0, (z C)^2) once to the sum of each buffered step; the accountant counts releases."""

import math

import numpy as np
import pytest

import strategies  # noqa: F401  (registers the built-in strategies)
from fedmoe_flwr.config import ConfigError, parse_run_config
from fedmoe_flwr.privacy import clip, epsilon_of_mu, epsilon_spent, noisy_sum
from fedmoe_flwr.server.ledger import PrivacyLedger
from fedmoe_flwr.server.policy import build_strategy
from tests.fake_grid import KEYS, make_node, run

K = "m.lora_B.weight"


def test_clip_and_noisy_sum_by_hand():
    clipped, norm = clip({K: np.array([3.0, 4.0], np.float32)}, 1.0)
    assert norm == 5.0
    np.testing.assert_allclose(clipped[K], [0.6, 0.8])
    same, _ = clip({K: np.array([0.3, 0.4], np.float32)}, 1.0)
    np.testing.assert_allclose(same[K], [0.3, 0.4])
    total = noisy_sum([{K: np.ones(3, np.float32)}, {K: np.full(3, 2.0, np.float32)}], 0.0,
                      np.random.default_rng(0))
    np.testing.assert_allclose(total[K], 3.0)
    noise = noisy_sum([{K: np.zeros(200_000, np.float32)}], 0.5, np.random.default_rng(1))[K]
    assert abs(noise.std() - 0.5) < 0.01 and abs(noise.mean()) < 0.01


def test_a_node_in_a_release_k_times_spends_k_clips():
    ledger = PrivacyLedger(parse_run_config({"privacy.clip": 1.0,
                                             "privacy.noise-multiplier": 2.0,
                                             "privacy.mode": "central"}).privacy)
    ledger.record(1, "sql_expert")  # an update arriving is not a release under central DP
    assert ledger.epsilon(1) == 0.0
    ledger.release([1, 1, 2])  # one noised sum holding node 1 twice and node 2 once
    ledger.release([2])
    assert ledger.epsilon(1) == pytest.approx(epsilon_of_mu(2 / 2.0, 1e-5))
    assert ledger.epsilon(2) == pytest.approx(epsilon_of_mu(math.sqrt(2) / 2.0, 1e-5))
    assert ledger.epsilon(2) == pytest.approx(epsilon_spent(2, 2.0, 1e-5))  # = 2 releases
    assert ledger.summary()["mode"] == "central" and ledger.summary()["nodes"]["1"][
        "releases"] == 1


def test_central_dp_needs_a_strategy_that_merges_sums():
    central = {"privacy.clip": 1.0, "privacy.noise-multiplier": 1.0, "privacy.mode": "central"}
    with pytest.raises(ConfigError, match="merges single updates"):
        build_strategy(parse_run_config({**central, "strategy.name": "fedasync"}))
    for name in ("fedbuff", "fedavg"):
        assert build_strategy(parse_run_config({**central, "strategy.name": name})).central_dp


def test_a_fedbuff_run_under_central_dp_clips_noises_and_accounts(tmp_path):
    # Scripted nodes add 1 to every weight (norm far over the clip): the server clips each
    # delta to 0.5 and steps by (sum of K = 2 clipped deltas + noise) / 2.
    loop, summary, _ = run(tmp_path, {1: make_node("python_expert"),
                                      2: make_node("python_expert")}, **{
        "strategy.name": "fedbuff", "strategy.fedbuff.buffer-size": 2,
        "privacy.clip": 0.5, "privacy.noise-multiplier": 0.001, "privacy.mode": "central",
        "run.max-updates": 4, "run.specialties": "python_expert"})
    expert = loop.experts["python_expert"]
    assert expert.version == 2
    moved = math.sqrt(sum(float(np.sum(v ** 2)) for v in expert.weights.values()))
    # two steps, each the mean of two deltas of norm 0.5 (staleness-weighted, <= 1): <= 1.0
    assert 0.3 < moved <= 1.0 + 1e-3, moved
    priv = summary["privacy"]
    assert priv["mode"] == "central" and all(n["releases"] >= 1 for n in priv["nodes"].values())
    assert max(priv["experts"].values()) == pytest.approx(
        max(n["epsilon"] for n in priv["nodes"].values()))
    assert set(KEYS) == set(expert.weights)
