"""Exact gateway merges: hand-computed cat, and agreement with PEFT's add_weighted_adapter."""

import numpy as np
import pytest

from fedmoe_flwr.merge.gateway import build_gateway, delta_weight, lora_modules

A, B = ".lora_A.weight", ".lora_B.weight"


def test_cat_hand_computed():
    # Rank 1, alpha 2 -> scaling s = 2. Expert a: B=[[1],[0]], A=[[1, 2]]; expert b: B=[[0],[1]],
    # A=[[3, 0]]. Coefficients 0.25 / 0.75.
    # sum c_i s B_i A_i = 0.25*2*[[1,2],[0,0]] + 0.75*2*[[0,0],[3,0]] = [[0.5, 1], [4.5, 0]]
    experts = {"a": {"m" + A: np.array([[1.0, 2.0]]), "m" + B: np.array([[1.0], [0.0]])},
               "b": {"m" + A: np.array([[3.0, 0.0]]), "m" + B: np.array([[0.0], [1.0]])}}
    gw = build_gateway(experts, {"a": 0.25, "b": 0.75}, "cat", rank=1, alpha=2)
    assert (gw.rank, gw.alpha) == (2, 2)  # rank grows to n * r; alpha = rank -> scaling 1
    np.testing.assert_allclose(gw.weights["m" + A], [[0.5, 1.0], [4.5, 0.0]])
    np.testing.assert_allclose(gw.weights["m" + B], [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(delta_weight(gw.weights, "m", 1.0), [[0.5, 1.0], [4.5, 0.0]])


def _random_experts(rng, n=3, r=4, modules=("x.q_proj", "x.down_proj"), shape=(24, 16)):
    return {f"e{i}": {k: v for m in modules for k, v in (
        (m + A, rng.normal(size=(r, shape[1])).astype(np.float32)),
        (m + B, rng.normal(size=(shape[0], r)).astype(np.float32)))} for i in range(n)}


@pytest.mark.parametrize("method", ["cat", "svd"])
def test_exact_methods_reproduce_the_weighted_sum_of_updates(method):
    rng = np.random.default_rng(0)
    experts = _random_experts(rng, n=3, r=4)
    coeffs = {"e0": 0.5, "e1": 0.3, "e2": 0.2}
    # svd keeps the full rank of the sum (3 x 4 = 12 <= 16), so it is exact too.
    gw = build_gateway(experts, coeffs, method, rank=4, alpha=8, svd_rank=12)
    for module in lora_modules(experts["e0"]):
        want = sum(c * delta_weight(experts[n], module, 8 / 4) for n, c in coeffs.items())
        got = delta_weight(gw.weights, module, gw.alpha / gw.rank)
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_svd_truncates_to_the_best_rank_k():
    rng = np.random.default_rng(1)
    experts = _random_experts(rng, n=2, r=4)
    gw = build_gateway(experts, {"e0": 0.5, "e1": 0.5}, "svd", rank=4, alpha=4)
    assert gw.rank == 4 and gw.weights["x.q_proj" + A].shape == (4, 16)
    want = sum(0.5 * delta_weight(experts[n], "x.q_proj", 1.0) for n in experts)
    s = np.linalg.svd(want, compute_uv=False)
    err = np.linalg.norm(delta_weight(gw.weights, "x.q_proj", 1.0) - want)
    assert err == pytest.approx(np.sqrt((s[4:] ** 2).sum()), rel=1e-4)  # Eckart-Young


def test_dare_ties_is_reproducible_by_seed_and_keeps_the_rank():
    rng = np.random.default_rng(2)
    experts = _random_experts(rng)
    coeffs = {n: 1 / 3 for n in experts}
    one = build_gateway(experts, coeffs, "dare-ties", rank=4, alpha=4, seed=7)
    two = build_gateway(experts, coeffs, "dare-ties", rank=4, alpha=4, seed=7)
    other = build_gateway(experts, coeffs, "dare-ties", rank=4, alpha=4, seed=8)
    assert one.rank == 4
    for k in one.weights:
        np.testing.assert_array_equal(one.weights[k], two.weights[k])
        assert np.isfinite(one.weights[k]).all()
    assert any(not np.array_equal(one.weights[k], other.weights[k]) for k in one.weights)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="cat, svd, ties, dare-ties"):
        build_gateway({"a": {"m" + A: np.ones((1, 2)), "m" + B: np.ones((2, 1))}}, {"a": 1.0},
                      "median", rank=1, alpha=1)


@pytest.mark.slow
@pytest.mark.parametrize(("ours", "peft_name"), [("cat", "cat"), ("svd", "svd"),
                                                 ("ties", "ties_svd")])
def test_matches_peft_add_weighted_adapter_on_the_tiny_model(ours, peft_name):
    """Our server-side merge equals PEFT's add_weighted_adapter on a real (unquantized) model."""
    from fedmoe_flwr.config import ModelConfig
    from fedmoe_flwr.node.adapters import get_adapter_weights, set_adapter_weights
    from fedmoe_flwr.node.model import ensure_adapter, load_base

    cfg = ModelConfig(quantization=0)
    loaded = load_base(cfg)
    model = loaded.peft_model
    rng = np.random.default_rng(3)
    names = ["py", "sql", "docs"]
    experts = {}
    for name in names:
        ensure_adapter(loaded, name, cfg)
        w = {k: rng.normal(scale=0.05, size=v.shape).astype(np.float32)
             for k, v in get_adapter_weights(model, name).items()}
        set_adapter_weights(model, name, w)
        experts[name] = w
    coeffs = {"py": 0.5, "sql": 0.3, "docs": 0.2}
    gw = build_gateway(experts, coeffs, ours, rank=cfg.lora_r, alpha=cfg.lora_alpha,
                       density=0.5)
    merged = f"gw_{ours}"
    if merged not in model.peft_config:
        model.add_weighted_adapter(names, [coeffs[n] for n in names], merged,
                                   combination_type=peft_name, density=0.5)
    peft_w = get_adapter_weights(model, merged)
    peft_cfg = model.peft_config[merged]
    assert (peft_cfg.r, peft_cfg.lora_alpha) == (gw.rank, gw.alpha)
    assert set(peft_w) == set(gw.weights)
    for module in lora_modules(gw.weights):
        np.testing.assert_allclose(delta_weight(gw.weights, module, 1.0),
                                   delta_weight(peft_w, module, 1.0), atol=1e-5)
