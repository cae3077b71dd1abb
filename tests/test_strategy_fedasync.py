"""FedAsync's server loop in a fake Grid: out-of-order, stale, error and malformed replies."""


import numpy as np
import pytest
from flwr.app import ArrayRecord

from fedmoe_flwr.config import parse_run_config
from fedmoe_flwr.server.artifacts import load_adapter_weights
from fedmoe_flwr.server.resume import load_resume_state
from fedmoe_flwr.wire import from_array_record, to_array_record
from tests.fake_grid import INIT, KEYS, make_node, run

PAPER_RULE = {"strategy.fedasync.alpha": 0.5, "strategy.fedasync.fresh-alpha": 0.5}


def test_single_node_versions_follow_fedasync_by_hand(tmp_path):
    # The paper's rule (fresh-alpha = alpha = 0.5), tau always 0: w1 = 0.5*0 + 0.5*(0+1) = 0.5;
    # w2 = 0.5*0.5 + 0.5*1.5 = 1.0; w3 = 0.5*1.0 + 0.5*2.0 = 1.5
    strategy, summary, _ = run(
        tmp_path, {1: make_node("python_expert")}, **{
            "strategy.fedasync.alpha": 0.5, "strategy.fedasync.fresh-alpha": 0.5,
            "run.max-updates": 3, "run.specialties": "python_expert"})
    expert = strategy.experts["python_expert"]
    assert expert.version == 3
    np.testing.assert_allclose(expert.weights[KEYS[0]], 1.5)
    saved = load_adapter_weights(tmp_path / "run" / "experts" / "python_expert")
    np.testing.assert_allclose(saved[KEYS[0]], 1.5)
    assert summary["experts"]["python_expert"]["version"] == 3


def test_a_fresh_update_counts_fully_and_a_stale_one_is_damped(tmp_path):
    # Default fresh-alpha 1: a lone node's updates (tau 0) replace the expert: w_n = n.
    strategy, _, events = run(tmp_path / "lone", {1: make_node("python_expert")}, **{
        "run.max-updates": 3, "run.specialties": "python_expert"})
    np.testing.assert_allclose(strategy.experts["python_expert"].weights[KEYS[0]], 3.0)
    assert {e["mixing"] for e in events if e["event"] == "update"} == {1.0}
    # Two nodes of one specialty: only updates whose base is still current count fully.
    _, _, events = run(tmp_path / "two", {1: make_node("python_expert", delay=1),
                                          2: make_node("python_expert", delay=3)},
                       **{"run.max-updates": 10, "run.specialties": "python_expert"})
    ups = [e for e in events if e["event"] == "update"]
    assert any(e["staleness"] > 0 for e in ups)
    for e in ups:
        want = 1.0 if e["staleness"] == 0 else 0.6 * (e["staleness"] + 1) ** -0.5
        assert e["mixing"] == pytest.approx(want)


def test_the_delta_rule_adds_each_nodes_delta_scaled_by_its_mixing(tmp_path):
    # Scripted nodes add 1 to every weight of their base, so with the delta rule every
    # merge adds exactly its mixing weight: w_final = sum of the mixings (1 when fresh,
    # 0.6 (tau + 1) ** -0.5 when stale), however stale the base was.
    strategy, _, events = run(tmp_path, {1: make_node("python_expert", delay=1),
                                         2: make_node("python_expert", delay=3)},
                              **{"run.max-updates": 10, "run.specialties": "python_expert",
                                 "strategy.fedasync.stale-rule": "delta"})
    ups = [e for e in events if e["event"] == "update"]
    assert any(e["staleness"] > 0 for e in ups)
    for e in ups:
        want = 1.0 if e["staleness"] == 0 else 0.6 * (e["staleness"] + 1) ** -0.5
        assert e["mixing"] == pytest.approx(want)
    np.testing.assert_allclose(strategy.experts["python_expert"].weights[KEYS[0]],
                               sum(e["mixing"] for e in ups), rtol=1e-5)


def test_out_of_order_stale_error_and_malformed(tmp_path):
    def nan(weights):
        return {k: np.full_like(v, np.nan) for k, v in weights.items()}

    nodes = {
        1: make_node("python_expert", delay=1),  # fast
        2: make_node("python_expert", delay=4),  # slow: its updates arrive stale
        3: make_node("sql_expert", delay=2, corrupt=nan),  # first update is NaN
        4: make_node("sql_expert", delay=1, error_on_train=2),  # fails on its 2nd train
    }
    strategy, summary, events = run(tmp_path, nodes, plot=True, **{
        "run.max-updates": 14, "strategy.fedasync.alpha": 0.6})
    updates = [e for e in events if e["event"] == "update"]
    py = [e for e in updates if e["specialty"] == "python_expert"]
    # Both python nodes contributed, and the slow one's updates were stale.
    assert {e["node"] for e in py} == {"1", "2"}
    stale = [e for e in py if e["staleness"] > 0]
    assert stale, "the slow node's updates should arrive stale"
    for e in stale:  # a_t = alpha * (tau + 1) ** -0.5
        assert e["mixing"] == pytest.approx(0.6 * (e["staleness"] + 1) ** -0.5)
    # Replies were consumed out of push order: node 1 finished several before node 2's first.
    first_slow = next(i for i, e in enumerate(py) if e["node"] == "2")
    assert first_slow >= 2
    # Versions only go up, by one per applied update.
    versions = [e["version"] for e in py]
    assert versions == sorted(versions)
    assert versions[-1] == strategy.experts["python_expert"].version
    # The NaN update was rejected and left the expert finite.
    assert summary["rejected"] == {"non-finite": 1}
    assert np.isfinite(strategy.experts["sql_expert"].weights[KEYS[0]]).all()
    # The error reply dropped node 4 without stopping the loop; node 3 kept training sql.
    assert summary["errors"] == {"5": 1}
    assert 4 not in strategy.nodes.registered
    assert any(e["event"] == "error" and e["node"] == "4" for e in events)
    sql_after_error = [e for e in updates if e["specialty"] == "sql_expert" and e["node"] == "3"]
    assert len(sql_after_error) >= 2
    # Final evaluation covered both domains, gateway included.
    assert set(summary["eval"]["final"]) == {"python_expert", "sql_expert"}
    assert "gateway" in summary["eval"]["final"]["sql_expert"]
    assert (tmp_path / "run" / "progress.png").stat().st_size > 10_000


def test_wrong_shape_and_unknown_specialty_are_refused(tmp_path):
    def wrong_shape(weights):
        return {k: np.zeros((3, 3), np.float32) for k in weights}

    nodes = {1: make_node("python_expert", corrupt=wrong_shape),
             2: make_node("rust_expert")}
    strategy, summary, events = run(tmp_path, nodes, **{
        "run.max-updates": 2, "run.specialties": "python_expert",
        "run.register-timeout": 3.0})
    assert summary["rejected"] == {"wrong-shape": 1}
    assert "unknown-specialty" in strategy.nodes.refused[2]
    assert strategy.experts["python_expert"].version == 2


def test_max_staleness_drops_updates(tmp_path):
    nodes = {1: make_node("python_expert", delay=1), 2: make_node("python_expert", delay=6)}
    _, summary, _ = run(tmp_path, nodes, **{"run.max-updates": 10, "strategy.max-staleness": 1,
                                            "run.specialties": "python_expert"})
    assert summary["rejected"].get("too-stale", 0) >= 1


def test_array_record_roundtrip():
    rec = to_array_record(INIT)
    assert isinstance(rec, ArrayRecord)
    back = from_array_record(rec)
    assert set(back) == set(INIT) and back[KEYS[1]].shape == (64, 8)


def test_resume_continues_versions_weights_and_counters(tmp_path):
    from fedmoe_flwr.config import ConfigError

    first, summary1, _ = run(tmp_path / "a", {1: make_node("python_expert"),
                                              2: make_node("sql_expert")},
                             **PAPER_RULE, **{"run.max-updates": 6})
    old = tmp_path / "a" / "run"
    v_old = {s: e.version for s, e in first.experts.items()}
    w_old = {s: e.weights[KEYS[0]].copy() for s, e in first.experts.items()}
    second, summary2, events = run(tmp_path / "b", {1: make_node("python_expert"),
                                                    2: make_node("sql_expert")},
                                   **PAPER_RULE, **{"run.max-updates": 4,
                                                    "run.resume-from": str(old)})
    resumed = next(e for e in events if e["event"] == "resume")
    assert resumed["versions"] == v_old
    # The first update of the new run mixed into the old weights: w = 0.5 w_old + 0.5 (w_old+1).
    first_py = next(e for e in events if e["event"] == "update"
                    and e["specialty"] == "python_expert")
    assert first_py["base_version"] == v_old["python_expert"]
    for s, e in second.experts.items():
        assert e.version > v_old[s]  # versions only go up
    py = second.experts["python_expert"]
    n_new = py.version - v_old["python_expert"]
    # Each update with alpha 0.5 and step +1 from w moves w by +0.5.
    np.testing.assert_allclose(py.weights[KEYS[0]], w_old["python_expert"] + 0.5 * n_new)
    assert summary2["updates"] == summary1["updates"] + 4  # counters continue
    assert second.federation.gateway.version > first.federation.gateway.version
    with pytest.raises(ConfigError, match="run.resume-from"):
        load_resume_state(str(tmp_path / "missing"), parse_run_config({}).model,
                          ("python_expert",))


def test_stop_file_ends_the_run_gracefully(tmp_path):
    node = make_node("python_expert")

    def stopping(msg):  # the user runs `fedmoe stop` after the node's third update
        result = node(msg)
        trains = sum(m.metadata.message_type == "train" for m in grid_log)
        if trains == 3:
            (tmp_path / "run" / "STOP").write_text("stop")
        return result

    grid_log = []

    def logged(msg):
        grid_log.append(msg)
        return stopping(msg)

    loop, summary, events = run(tmp_path, {1: logged}, **{"run.specialties": "python_expert"})
    assert 3 <= summary["updates"] <= 4  # the third update's successor may be in flight
    assert summary["eval"]["final"]  # a final evaluation ran
    assert not (tmp_path / "run" / "STOP").exists()  # the request was served and removed
