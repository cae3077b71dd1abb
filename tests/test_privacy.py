"""Local DP of updates: the clipping bound, the noise's standard deviation, the accountant."""

import math

import numpy as np
import pytest

from fedmoe_flwr.config import ConfigError, PrivacyConfig, parse_run_config
from fedmoe_flwr.privacy import epsilon_spent, gdp_delta, log_phi, noise_for_epsilon, privatize
from fedmoe_flwr.server.ledger import PrivacyLedger


def test_clipping_bounds_the_norm_and_leaves_small_updates_alone():
    big = {"a": np.full((10, 10), 3.0, np.float32), "b": np.full(44, 4.0, np.float32)}
    clipped, norm = privatize(big, clip=2.0, noise_multiplier=0.0, rng=np.random.default_rng(0))
    assert norm == pytest.approx(math.sqrt(100 * 9 + 44 * 16))
    total = math.sqrt(sum(float((v.astype(np.float64) ** 2).sum()) for v in clipped.values()))
    assert total == pytest.approx(2.0, rel=1e-6)
    small = {"a": np.array([0.3, 0.4], np.float32)}  # norm 0.5 < 2: unchanged
    same, _ = privatize(small, clip=2.0, noise_multiplier=0.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(same["a"], small["a"])


def test_noise_has_the_configured_standard_deviation():
    zeros = {"a": np.zeros(200_000, np.float32), "b": np.zeros((300, 500), np.float32)}
    noisy, _ = privatize(zeros, clip=0.5, noise_multiplier=3.0, rng=np.random.default_rng(1))
    values = np.concatenate([v.ravel() for v in noisy.values()])
    assert values.std() == pytest.approx(1.5, rel=0.01)  # z * C
    assert abs(values.mean()) < 0.01


def test_accountant_matches_the_published_gaussian_dp_curve():
    # Balle & Wang 2018, Dong et al. 2019:
    # delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)
    # mu = 1, eps = 0: Phi(0.5) - Phi(-0.5) = 0.382925;  eps = 1: Phi(-0.5) - e Phi(-1.5) = 0.126937
    assert gdp_delta(0.0, 1.0) == pytest.approx(0.382925, abs=1e-6)
    assert gdp_delta(1.0, 1.0) == pytest.approx(0.126937, abs=1e-6)
    # T updates at noise z compose to mu = sqrt(T) / z: 4 updates at z = 2 is mu = 1
    eps = epsilon_spent(4, 2.0, 0.126937)
    assert eps == pytest.approx(1.0, abs=1e-5)
    # tighter than the classic calibration z = sqrt(2 ln(1.25/delta)) / eps (Dwork & Roth A.1)
    z = math.sqrt(2 * math.log(1.25 / 1e-5)) / 0.5
    assert epsilon_spent(1, z, 1e-5) <= 0.5
    assert epsilon_spent(0, 1.0, 1e-5) == 0.0 and epsilon_spent(3, 0.0, 1e-5) == math.inf
    assert noise_for_epsilon(8.0, 30, 1e-5) == pytest.approx(
        math.sqrt(30) / _mu_for(8.0, 1e-5), rel=1e-4)


def _mu_for(eps, delta):
    lo, hi = 1e-3, 50.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gdp_delta(eps, mid) < delta else (lo, mid)
    return lo


def test_log_phi_is_continuous_into_the_far_tail():
    exact = math.log(0.5 * math.erfc(31.0 / math.sqrt(2)))  # still representable at -31
    assert log_phi(-31.0) == pytest.approx(exact, rel=1e-10)  # the tail series branch
    assert math.isfinite(log_phi(-1000.0))  # where erfc underflows to 0
    assert log_phi(0.0) == pytest.approx(math.log(0.5))


def test_ledger_counts_releases_and_enforces_the_budget():
    cfg = PrivacyConfig(clip=1.0, noise_multiplier=2.0, max_epsilon=epsilon_spent(4, 2.0, 1e-5))
    ledger = PrivacyLedger(cfg)
    for _ in range(3):
        ledger.record(7, "sql_expert")
    assert ledger.may_train(7)  # a 4th update stays within the budget
    ledger.record(7, "sql_expert")
    assert not ledger.may_train(7) and not ledger.may_train(7)  # a 5th would not
    ledger.record(8, "sql_expert")
    s = ledger.summary()
    assert s["nodes"]["7"]["releases"] == 4 and s["nodes"]["7"]["budget_spent"]
    assert s["experts"]["sql_expert"] == pytest.approx(epsilon_spent(4, 2.0, 1e-5), abs=1e-4)


def test_nonsense_privacy_settings_are_refused():
    with pytest.raises(ConfigError, match="privacy.clip"):
        parse_run_config({"privacy.noise-multiplier": 1.0})
    with pytest.raises(ConfigError, match="privacy.noise-multiplier"):
        parse_run_config({"privacy.clip": 1.0, "privacy.max-epsilon": 8.0})
    with pytest.raises(ConfigError, match="privacy.delta"):
        parse_run_config({"privacy.delta": 1.5})
