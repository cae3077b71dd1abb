"""Compression and privacy through the server loop (fake Grid): bytes, deltas, epsilon, budget."""

import numpy as np

from tests.fake_grid import INIT, make_node, run

TWO = {"run.specialties": "python_expert,sql_expert", "run.max-updates": 12}


def test_compressed_deltas_are_applied_to_what_was_sent_and_bytes_shrink(tmp_path):
    plain, full, _ = run(tmp_path / "none", {1: make_node("python_expert", step=0.5),
                                              2: make_node("sql_expert", step=0.5)}, **TWO)
    comp, small, events = run(tmp_path / "int8", {
        1: make_node("python_expert", step=0.5, compression="int8"),
        2: make_node("sql_expert", step=0.5, compression="int8")},
        **TWO, **{"comm.compression": "int8"})
    assert small["updates"] == full["updates"] == 12
    assert small["compression"] == "int8"
    # server -> node: fp16 weights; node -> server: int8 codes + one scale per channel (the
    # ~400 bytes of .npy headers and index weigh on this 4 KiB adapter; real ratios: test_codec)
    assert small["bytes_per_update"]["sent"] <= 0.6 * full["bytes_per_update"]["sent"]
    assert small["bytes_per_update"]["received"] <= 0.4 * full["bytes_per_update"]["received"]
    ups = [e for e in events if e["event"] == "update"]
    assert all(e["bytes_in"] > 0 and e["bytes_out"] > 0 for e in ups)
    for specialty in ("python_expert", "sql_expert"):  # same merges, within rounding
        a = plain.federation.experts[specialty].weights
        b = comp.federation.experts[specialty].weights
        for k in a:
            np.testing.assert_allclose(b[k], a[k], atol=0.05 * max(1.0, np.abs(a[k]).max()))


def test_a_delta_of_the_wrong_shape_is_rejected(tmp_path):
    def bad(weights):
        key = sorted(weights)[0]
        return {**weights, key: np.zeros((3, 3), np.float32)}
    _, summary, _ = run(tmp_path, {1: make_node("python_expert", compression="fp16",
                                                corrupt=bad),
                                   2: make_node("sql_expert", compression="fp16")},
                        **TWO, **{"comm.compression": "fp16"})
    assert summary["rejected"] == {"wrong-shape": 1}


def test_epsilon_is_reported_and_the_budget_stops_a_node(tmp_path):
    _, summary, events = run(tmp_path, {1: make_node("python_expert", step=0.01),
                                        2: make_node("sql_expert", step=0.01)},
                             **{**TWO, "run.max-updates": 0, "run.duration": 30.0,
                                "privacy.clip": 1.0, "privacy.noise-multiplier": 4.0,
                                "privacy.max-epsilon": 2.0})
    p = summary["privacy"]
    assert set(p["experts"]) == {"python_expert", "sql_expert"}
    assert all(0 < n["epsilon"] <= 2.0 and n["budget_spent"] for n in p["nodes"].values())
    ups = [e for e in events if e["event"] == "update"]
    assert ups and all("epsilon" in e for e in ups)
    assert max(e["epsilon"] for e in ups) <= 2.0
    assert len(INIT)  # the scripted nodes ran
