"""FedBuff in the fake Grid: buffered steps, stale deltas, errors and NaN updates."""

import numpy as np
import pytest

from tests.fake_grid import KEYS, make_node, run


def test_fedbuff_single_node_hand_computed(tmp_path):
    # K = 2, eta = 1, one node adding 1.0, never stale: deltas are +1, +1 from v0;
    # v1 = 0 + (1 + 1) / 2 = 1.0 after two updates; then +1, +1 from v1 -> v2 = 2.0.
    strategy, summary, events = run(
        tmp_path, {1: make_node("python_expert")},
        **{"strategy.name": "fedbuff", "strategy.fedbuff.buffer-size": 2, "run.max-updates": 4,
           "run.specialties": "python_expert"})
    expert = strategy.experts["python_expert"]
    assert expert.version == 2
    np.testing.assert_allclose(expert.weights[KEYS[0]], 2.0)
    applied = [e["applied"] for e in events if e["event"] == "update"]
    assert applied == [False, True, False, True]


def test_fedbuff_out_of_order_stale_error_and_malformed(tmp_path):
    def nan(weights):
        return {k: np.full_like(v, np.nan) for k, v in weights.items()}

    nodes = {
        1: make_node("python_expert", delay=1),
        2: make_node("python_expert", delay=4),
        3: make_node("sql_expert", delay=2, corrupt=nan),
        4: make_node("sql_expert", delay=1, error_on_train=2),
    }
    strategy, summary, events = run(tmp_path, nodes, **{
        "strategy.name": "fedbuff", "strategy.fedbuff.buffer-size": 2, "run.max-updates": 14})
    py = [e for e in events if e["event"] == "update" and e["specialty"] == "python_expert"]
    stale = [e for e in py if e["staleness"] > 0]
    assert stale
    for e in stale:
        assert e["mixing"] == pytest.approx((1 + e["staleness"]) ** -0.5)
    assert summary["rejected"] == {"non-finite": 1}
    assert summary["errors"] == {"5": 1}
    assert strategy.experts["python_expert"].version >= 2
    assert np.isfinite(strategy.experts["sql_expert"].weights[KEYS[0]]).all()
