"""FFA-LoRA (model.lora-variant = ffa): with A frozen and shared, averaging B is exactly the
average of what the nodes learned; standard LoRA's separate averages of A and B are not."""

import numpy as np
import pytest

from fedmoe_flwr.config import ConfigError, parse_run_config
from fedmoe_flwr.contract import TrainInstruction, TrainMetrics, TrainReply
from fedmoe_flwr.lora import a_part, b_part
from fedmoe_flwr.merge.rules import weighted_average
from fedmoe_flwr.merge.validation import UpdateRejected
from fedmoe_flwr.server.updates import with_frozen_a
from fedmoe_flwr.wire import to_array_record
from tests.fake_grid import INIT, KEYS, run

A, B = KEYS
RNG = np.random.default_rng(0)


def adapter(a, b):
    return {A: a.astype(np.float32), B: b.astype(np.float32)}


def delta_w(w):
    return w[B] @ w[A]  # (out, r) @ (r, in): the weight change the adapter makes


def test_shared_frozen_a_makes_the_average_of_b_exact_and_standard_is_not():
    a_shared = RNG.normal(size=(8, 64))
    nodes = [adapter(a_shared, RNG.normal(size=(64, 8))) for _ in range(4)]
    merged = weighted_average(nodes, [1, 1, 1, 1])
    want = np.mean([delta_w(n) for n in nodes], axis=0)
    np.testing.assert_allclose(delta_w(merged), want, rtol=1e-5, atol=1e-5)  # exact
    # standard LoRA: every node also moved its own A; the product of the averages is not
    # the average of the products (cross terms), and the error is far above float noise
    free = [adapter(a_shared + RNG.normal(scale=0.5, size=(8, 64)), n[B]) for n in nodes]
    merged = weighted_average(free, [1, 1, 1, 1])
    err = np.abs(delta_w(merged) - np.mean([delta_w(n) for n in free], axis=0)).max()
    assert err > 0.1, err


def test_a_reply_is_completed_with_the_frozen_a_and_a_changed_a_is_refused():
    expert = adapter(RNG.normal(size=(8, 64)), np.zeros((64, 8)))
    b = {B: np.ones((64, 8), np.float32)}
    full = with_frozen_a(b, expert, is_delta=False)
    np.testing.assert_array_equal(full[A], expert[A])
    np.testing.assert_array_equal(full[B], 1.0)
    delta = with_frozen_a(b, expert, is_delta=True)
    assert not delta[A].any()
    assert with_frozen_a({**expert, B: b[B]}, expert, is_delta=False)[A] is not None
    with pytest.raises(UpdateRejected, match="a-changed"):
        with_frozen_a({A: expert[A] + 1e-3, **b}, expert, is_delta=False)
    with pytest.raises(UpdateRejected, match="a-changed"):
        with_frozen_a({A: np.ones((8, 64), np.float32), **b}, expert, is_delta=True)


def _ffa_node(change_a=False):
    state = {"n": 0}

    def behave(msg):
        from tests.fake_grid import make_node

        kind = msg.metadata.message_type
        if kind == "query":
            from dataclasses import replace

            from fedmoe_flwr.contract import Registration
            from tests.fake_grid import SIG

            return Registration("python_expert", 100, 10, "fp", "cpu",
                                replace(SIG, variant="ffa"), INIT).to_content(), 1
        if kind != "train":
            return make_node("python_expert")(msg)
        state["n"] += 1
        instr, received = TrainInstruction.from_content(msg.content)
        assert set(received) == {B} and instr.frozen_a  # only B travels, with A's checksum
        new = {B: received[B] + 0.01}
        if change_a and state["n"] == 1:
            new[A] = INIT[A] + 5.0
        return TrainReply(TrainMetrics(8, 1.0, 1, 10, 0.1, 0.0, instr.version), False) \
            .to_content(to_array_record(new)), 1

    return behave


def test_an_ffa_run_sends_b_only_and_keeps_a(tmp_path):
    loop, summary, _ = run(tmp_path / "ffa", {1: _ffa_node(), 2: _ffa_node(change_a=True)},
                           **{"model.lora-variant": "ffa", "run.max-updates": 6,
                              "run.specialties": "python_expert"})
    expert = loop.experts["python_expert"]
    np.testing.assert_array_equal(expert.weights[A], INIT[A])  # never moved
    assert expert.weights[B].max() > 0
    assert summary["rejected"] == {"a-changed": 1}
    std, s_summary, _ = run(tmp_path / "std", {1: _std_node()}, **{
        "run.max-updates": 3, "run.specialties": "python_expert"})
    ratio = summary["bytes_per_update"]["received"] / s_summary["bytes_per_update"]["received"]
    assert ratio <= 0.55, ratio  # B only: (64 x 8) of (8 x 64 + 64 x 8), plus the index


def _std_node():
    from tests.fake_grid import make_node

    return make_node("python_expert", step=0.01)


def test_the_variant_is_part_of_the_lora_signature():
    from fedmoe_flwr.lora import lora_signature

    ffa = lora_signature(parse_run_config({"model.lora-variant": "ffa"}).model)
    assert ffa != lora_signature(parse_run_config({}).model) and ffa.variant == "ffa"
    with pytest.raises(ConfigError, match="model.lora-variant"):
        parse_run_config({"model.lora-variant": "fed-sb"})
    assert set(a_part(INIT)) == {A} and set(b_part(INIT)) == {B}
