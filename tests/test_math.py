"""Staleness functions, FedAsync mixing and gateway merges against hand-computed values."""

import math

import numpy as np
import pytest

from fedmoe_flwr.merge.gateway import build_gateway, gateway_coefficients
from fedmoe_flwr.merge.rules import fedasync_delta, fedasync_mix, weighted_average
from fedmoe_flwr.merge.staleness import make_staleness


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("constant", {}, [1.0, 1.0, 1.0, 1.0]),
        # (tau + 1) ** -0.5: 1, 1/sqrt(2), 1/sqrt(3), 1/2
        ("polynomial", {"a": 0.5}, [1.0, 0.7071067811865476, 0.5773502691896258, 0.5]),
        # b = 1: tau <= 1 -> 1; tau = 2 -> 1 / (0.5 * 1 + 1) = 2/3; tau = 3 -> 1 / 2
        ("hinge", {"a": 0.5, "b": 1}, [1.0, 1.0, 2.0 / 3.0, 0.5]),
        ("exponential", {"decay": 0.5}, [1.0, 0.5, 0.25, 0.125]),
    ],
)
def test_staleness_functions(name, kwargs, expected):
    s = make_staleness(name, **kwargs)
    assert [s(tau) for tau in range(4)] == pytest.approx(expected)


def test_unknown_staleness_names_valid_ones():
    with pytest.raises(ValueError, match="polynomial"):
        make_staleness("linear")


def test_fedasync_mix_hand_computed():
    current = {"w": np.array([1.0, 2.0], dtype=np.float32)}
    client = {"w": np.array([3.0, 6.0], dtype=np.float32)}
    # a = 0.25: 0.75 * [1, 2] + 0.25 * [3, 6] = [1.5, 3.0]
    out = fedasync_mix(current, client, 0.25)
    np.testing.assert_allclose(out["w"], [1.5, 3.0])
    assert out["w"].dtype == np.float32
    np.testing.assert_array_equal(current["w"], [1.0, 2.0])  # inputs untouched


def test_fedasync_delta_adds_only_what_the_node_learned():
    current = {"w": np.array([5.0, 2.0], dtype=np.float32)}  # others moved it on from the base
    base = {"w": np.array([1.0, 2.0], dtype=np.float32)}  # what the slow node trained from
    client = {"w": np.array([3.0, 6.0], dtype=np.float32)}  # its delta: [2, 4]
    # a = 0.25: [5, 2] + 0.25 * [2, 4] = [5.5, 3.0]; mixing would give [4.5, 3.0] (pulled back)
    np.testing.assert_allclose(fedasync_delta(current, client, base, 0.25)["w"], [5.5, 3.0])
    np.testing.assert_allclose(fedasync_mix(current, client, 0.25)["w"], [4.5, 3.0])
    # tau = 0 (base is the current expert): both rules agree.
    np.testing.assert_allclose(fedasync_delta(base, client, base, 0.25)["w"],
                               fedasync_mix(base, client, 0.25)["w"])
    np.testing.assert_array_equal(current["w"], [5.0, 2.0])  # inputs untouched
    with pytest.raises(ValueError, match="mixing"):
        fedasync_delta(current, client, base, 1.5)


def test_fedasync_staleness_scaled_mixing():
    # alpha 0.6, polynomial a=0.5, tau=3 -> a_t = 0.6 * 0.5 = 0.3
    a_t = 0.6 * make_staleness("polynomial", a=0.5)(3)
    out = fedasync_mix({"w": np.zeros(1)}, {"w": np.ones(1) * 10}, a_t)
    assert math.isclose(float(out["w"][0]), 3.0, rel_tol=1e-6)


def test_fedasync_mix_rejects_out_of_range():
    with pytest.raises(ValueError, match="mixing weight"):
        fedasync_mix({"w": np.zeros(1)}, {"w": np.zeros(1)}, 1.5)


def test_weighted_average_hand_computed():
    out = weighted_average([{"w": np.array([0.0, 4.0])}, {"w": np.array([8.0, 0.0])}], [3, 1])
    np.testing.assert_allclose(out["w"], [2.0, 3.0])  # (3*0 + 8)/4, (3*4 + 0)/4


def test_gateway_weighted_average_by_examples():
    experts = {
        "a": {"lora_A": np.array([[1.0, 1.0]]), "lora_B": np.array([[2.0]])},
        "b": {"lora_A": np.array([[4.0, 0.0]]), "lora_B": np.array([[0.0]])},
    }
    coeffs = gateway_coefficients({"a": 300, "b": 100}, "examples")
    assert coeffs == pytest.approx({"a": 0.75, "b": 0.25})
    gw = build_gateway(experts, coeffs, "weighted-average", rank=1, alpha=2)
    assert (gw.rank, gw.alpha) == (1, 2)
    np.testing.assert_allclose(gw.weights["lora_A"], [[1.75, 0.75]])  # 0.75*[1,1] + 0.25*[4,0]
    np.testing.assert_allclose(gw.weights["lora_B"], [[1.5]])


def test_gateway_equal_weighting_and_sum():
    experts = {"a": {"m": np.array([1.0, 3.0])}, "b": {"m": np.array([5.0, -1.0])}}
    eq = gateway_coefficients({"a": 0, "b": 1000}, "equal")
    assert eq == {"a": 0.5, "b": 0.5}
    avg = build_gateway(experts, eq, "weighted-average", rank=1, alpha=1)
    np.testing.assert_allclose(avg.weights["m"], [3.0, 1.0])
    np.testing.assert_allclose(build_gateway(experts, eq, "sum", rank=1, alpha=1).weights["m"],
                               [6.0, 2.0])


def test_gateway_examples_weighting_counts_unseen_expert_as_one():
    assert gateway_coefficients({"a": 0, "b": 3}, "examples") == pytest.approx(
        {"a": 0.25, "b": 0.75})


def test_fedbuff_staleness_weight():
    from fedmoe_flwr.merge.rules import fedbuff_staleness_weight

    assert fedbuff_staleness_weight(0) == 1.0
    assert fedbuff_staleness_weight(3) == pytest.approx(0.5)  # 1 / sqrt(4)


def test_fedbuff_apply_hand_computed():
    from fedmoe_flwr.merge.rules import fedbuff_apply

    current = {"w": np.array([1.0, 1.0])}
    deltas = [{"w": np.array([2.0, 0.0])}, {"w": np.array([0.0, 4.0])}]
    # scales 1 and 0.5, K = 2, eta = 0.5: w + 0.5 * ([2, 0] * 1 + [0, 4] * 0.5) / 2
    # = [1, 1] + 0.5 * [1, 1] = [1.5, 1.5]
    out = fedbuff_apply(current, deltas, [1.0, 0.5], server_lr=0.5)
    np.testing.assert_allclose(out["w"], [1.5, 1.5])


def test_a_full_mixing_weight_replaces_the_expert_bit_for_bit():
    current = {"w": np.array([0.1, 3.3], dtype=np.float32)}
    client = {"w": np.array([1e-8, 7.7e5], dtype=np.float32)}  # w + (c - w) would round
    out = fedasync_mix(current, client, 1.0)
    np.testing.assert_array_equal(out["w"], client["w"])
    assert out["w"] is not client["w"]
