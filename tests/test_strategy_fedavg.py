"""Synchronous FedAvg in the fake Grid: weighted rounds, barriers, timeouts, errors, NaN."""

import numpy as np

from tests.fake_grid import KEYS, make_node, run


def test_fedavg_rounds_hand_computed(tmp_path):
    # Two python nodes adding 1 and 3, trained on 8 and 24 examples, replying out of order:
    # round 1: (8 * 1 + 24 * 3) / 32 = 2.5; round 2: (8 * 3.5 + 24 * 5.5) / 32 = 5.0.
    nodes = {1: make_node("python_expert", delay=4, step=1.0, examples=8),
             2: make_node("python_expert", delay=1, step=3.0, examples=24)}
    strategy, summary, events = run(tmp_path, nodes, **{
        "strategy.name": "fedavg", "run.max-updates": 4, "run.specialties": "python_expert"})
    expert = strategy.experts["python_expert"]
    assert expert.version == 2
    np.testing.assert_allclose(expert.weights[KEYS[0]], 5.0)
    updates = [e for e in events if e["event"] == "update"]
    assert [e["node"] for e in updates] == ["2", "1", "2", "1"]  # fast node answers first
    assert all(e["staleness"] == 0 and not e["applied"] for e in updates)
    rounds = [e for e in events if e["event"] == "round"]
    assert [r["versions"] for r in rounds] == [{"python_expert": 1}, {"python_expert": 2}]
    assert summary["late_dropped"] == 0


def _rounds_per_specialty(events):
    versions = {}
    for e in events:
        if e["event"] == "version":
            versions[e["adapter"]] = e["version"]
    return versions


def test_global_barrier_holds_fast_specialty_back_and_specialty_scope_does_not(tmp_path):
    nodes = {1: make_node("python_expert", delay=1), 2: make_node("sql_expert", delay=6)}
    common = {"strategy.name": "fedavg", "run.max-updates": 12}
    _, _, glob = run(tmp_path / "g", dict(nodes), **common)
    v = _rounds_per_specialty(glob)
    assert abs(v["python_expert"] - v["sql_expert"]) <= 1  # lock-step rounds
    _, _, per = run(tmp_path / "s", dict(nodes), **common,
                    **{"strategy.fedavg.sync-scope": "specialty"})
    v = _rounds_per_specialty(per)
    assert v["python_expert"] >= 3 * v["sql_expert"]  # the fast expert no longer waits


def test_round_timeout_drops_late_replies_and_counts_them(tmp_path):
    # Node 2 needs 40 pulls; with 0.05 s per idle pull a 0.5 s timeout closes the round without
    # it, and its reply, when it comes, is dropped and counted as late.
    nodes = {1: make_node("python_expert", delay=1, step=1.0),
             2: make_node("python_expert", delay=40, step=100.0)}
    strategy, summary, events = run(tmp_path, nodes, **{
        "strategy.name": "fedavg", "strategy.fedavg.round-timeout": 0.5, "run.max-updates": 6,
        "run.specialties": "python_expert"})
    assert summary["late_dropped"] >= 1
    assert any(e["event"] == "late" and e["node"] == "2" for e in events)
    timed_out = [r for r in events if r["event"] == "round" and r["timed_out"]]
    assert timed_out and timed_out[0]["timed_out"] == ["2"]
    # The expert moved only by node 1's +1 steps: node 2's +100 never got in.
    expert = strategy.experts["python_expert"]
    np.testing.assert_allclose(expert.weights[KEYS[0]], float(expert.version))


def test_error_and_nan_replies_do_not_block_the_round(tmp_path):
    def nan(weights):
        return {k: np.full_like(v, np.nan) for k, v in weights.items()}

    nodes = {1: make_node("python_expert", delay=2),
             2: make_node("python_expert", delay=1, error_on_train=2),
             3: make_node("sql_expert", delay=1, corrupt=nan),
             4: make_node("sql_expert", delay=3)}
    strategy, summary, events = run(tmp_path, nodes, **{
        "strategy.name": "fedavg", "run.max-updates": 12})
    assert summary["errors"] == {"5": 1}
    assert summary["rejected"] == {"non-finite": 1}
    assert 2 not in strategy.nodes.registered
    assert np.isfinite(strategy.experts["sql_expert"].weights[KEYS[0]]).all()
    # Rounds kept closing after the error: python kept gaining versions from node 1 alone.
    assert strategy.experts["python_expert"].version >= 4
    assert summary["late_dropped"] == 0
