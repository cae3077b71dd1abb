"""The per-update server path: codec, finiteness, norm bound, background writes, gateway."""

import platform
import sys
import threading

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord

from fedmoe_flwr.config import parse_run_config
from fedmoe_flwr.merge.rules import fedasync_mix, fedbuff_apply, weighted_average
from fedmoe_flwr.merge.validation import update_norm_ratio
from fedmoe_flwr.server.artifacts import RunDirectory, load_adapter_weights
from fedmoe_flwr.server.background import BackgroundWorker
from fedmoe_flwr.server.experts import Contribution, ExpertState
from fedmoe_flwr.server.federation import Federation, GatewayPlan, NonFiniteMerge
from fedmoe_flwr.weights import all_finite
from fedmoe_flwr.wire import INDEX, PACKED, from_array_record, to_array_record
from tests.fake_grid import make_node, run

W = {"m.lora_A.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
     "m.lora_B.weight": np.array([[1.5], [-2.0]], dtype=np.float64)}


def test_packed_record_is_plain_npy_that_any_flower_peer_reads():
    rec = to_array_record(W)
    # Array.numpy() (np.load) reads what we wrote without our decoder: keys sorted, float32.
    np.testing.assert_array_equal(rec[PACKED].numpy(), [0, 1, 2, 3, 4, 5, 1.5, -2.0])
    assert rec[PACKED].numpy().dtype == np.float32
    back = from_array_record(rec)
    for key, value in W.items():
        np.testing.assert_array_equal(back[key], value.astype(np.float32))
    assert not back["m.lora_A.weight"].flags.writeable  # a view of the message, never copied


def test_records_made_by_flower_itself_decode_too():
    packed = np.array([0, 1, 2, 3, 4, 5, 1.5, -2.0], np.float32)
    index = np.frombuffer(b'[["m.lora_A.weight", [2, 3]], ["m.lora_B.weight", [2, 1]]]', np.uint8)
    back = from_array_record(ArrayRecord({PACKED: Array(packed), INDEX: Array(index)}))
    np.testing.assert_array_equal(back["m.lora_B.weight"], [[1.5], [-2.0]])
    # big-endian payloads are not viewed in place but converted by numpy
    big = ArrayRecord({PACKED: Array(packed.astype(">f4")), INDEX: Array(index)})
    np.testing.assert_array_equal(from_array_record(big)["m.lora_A.weight"], W["m.lora_A.weight"])


def test_all_finite_is_exact_when_the_sum_overflows():
    assert all_finite({"x": np.full(10, 3e38, np.float32)})  # sum is inf, values are finite
    assert not all_finite({"x": np.array([1.0, np.nan], np.float32)})
    assert not all_finite({"x": np.array([np.inf, -np.inf], np.float32)})  # sum would be NaN


def test_norm_ratio_hand_computed_and_overflow_safe():
    base = {"k": np.array([1.0, 1.0], np.float32)}
    update = {"k": np.array([4.0, 5.0], np.float32)}  # delta (3, 4): norm 5
    current = {"k": np.array([0.0, 2.0], np.float32)}  # norm 2
    assert update_norm_ratio(update, base, current) == pytest.approx(2.5)
    huge = {"k": np.array([1e30, 0.0], np.float32)}  # squares overflow float32
    assert update_norm_ratio(huge, base, current) == pytest.approx(0.5e30, rel=1e-6)


def test_merge_rules_hand_computed_in_float32():
    cur, client = {"k": np.array([1.0, 2.0], np.float32)}, {"k": np.array([3.0, 6.0], np.float32)}
    mixed = fedasync_mix(cur, client, 0.25)  # 0.75 * cur + 0.25 * client
    np.testing.assert_allclose(mixed["k"], [1.5, 3.0])
    assert mixed["k"].dtype == np.float32 and cur["k"][0] == 1.0  # inputs untouched
    avg = weighted_average([cur, client], [1.0, 3.0])  # (1 * cur + 3 * client) / 4
    np.testing.assert_allclose(avg["k"], [2.5, 5.0])
    step = fedbuff_apply(cur, [client, client], [1.0, 0.5], server_lr=2.0)  # 2 * 0.75 client
    np.testing.assert_allclose(step["k"], [1.0 + 4.5, 2.0 + 9.0])


def test_background_worker_keeps_only_the_newest_job_per_key_and_reports_errors():
    worker = BackgroundWorker("test")
    gate, done = threading.Event(), []
    worker.submit("block", gate.wait)  # holds the thread so the next jobs queue up
    for v in range(5):
        worker.submit("a", lambda v=v: done.append(("a", v)))
    worker.submit("b", lambda: done.append(("b", 0)))
    gate.set()
    worker.flush()
    assert done == [("a", 4), ("b", 0)]  # older "a" jobs were replaced, order kept

    def fail():
        raise OSError("disk full")
    worker.submit("c", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        worker.flush()
    worker.submit("d", lambda: done.append(("d", 0)))  # the worker lives on
    worker.close()
    assert done[-1] == ("d", 0)


def _federation(tmp_path, **overrides):
    cfg = parse_run_config({"run.specialties": "a,b", **overrides})
    now = [0.0]
    run_dir = RunDirectory(tmp_path, "run", cfg.model)
    fed = Federation(GatewayPlan(cfg.gateway, cfg.model, cfg.run.seed), run_dir, run_dir.events,
                     lambda: now[0])
    for name in ("a", "b"):
        fed.experts[name] = ExpertState(name, {k: v.astype(np.float32) for k, v in W.items()})
    return fed, now


def test_gateway_is_rebuilt_on_its_refresh_interval_not_after_every_update(tmp_path):
    fed, now = _federation(tmp_path, **{"gateway.refresh-every": 10.0})
    fed.refresh_gateway()
    assert fed.gateway.version == 0
    plus = {k: v + 1 for k, v in W.items()}
    fed.publish("a", plus)
    now[0] = 4.0
    fed.publish("a", plus)
    fed.publish("b", plus)
    fed.tick()
    fed.flush()
    assert fed.gateway.version == 0  # within 10 s of the last build: not rebuilt
    now[0] = 10.0
    fed.tick()
    fed.flush()
    assert fed.gateway.version == 1 and fed.gateway.expert_versions == {"a": 2, "b": 1}
    fed.tick()
    fed.flush()
    assert fed.gateway.version == 1  # nothing changed since: no rebuild
    fed.close()
    # the checkpoints on disk are the newest versions
    root = fed.run_dir.root
    np.testing.assert_array_equal(load_adapter_weights(root / "experts" / "a")["m.lora_B.weight"],
                                  plus["m.lora_B.weight"].astype(np.float32))
    assert (root / "gateway").resolve().name.endswith("v000001")


def test_refresh_every_zero_rebuilds_after_every_update(tmp_path):
    fed, _ = _federation(tmp_path, **{"gateway.refresh-every": 0.0})
    fed.refresh_gateway()
    for _ in range(3):
        fed.publish("b", {k: v + 1 for k, v in W.items()})
        fed.flush()
    assert fed.gateway.expert_versions["b"] == 3
    fed.close()


def test_a_run_ends_with_a_gateway_of_the_final_experts(tmp_path):
    loop, summary, _ = run(tmp_path, {1: make_node("python_expert"), 2: make_node("sql_expert")},
                           **{"run.max-updates": 12, "gateway.refresh-every": 86400.0})
    gw = loop.federation.gateway
    assert gw.expert_versions == loop.federation.versions()  # rebuilt before the final eval
    assert summary["gateway"]["expert_versions"] == gw.expert_versions
    assert loop.federation.backlog() == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("fedmoe-")]  # closed


def test_a_refused_non_finite_merge_counts_nothing(tmp_path):
    # the counters (examples seen: the gateway's weight; staleness; version) move only
    # with a published merge: a refused one must not raise the expert's gateway weight
    fed, _ = _federation(tmp_path)
    nan = {k: np.full_like(v, np.nan) for k, v in W.items()}
    with pytest.raises(NonFiniteMerge):
        fed.publish("a", nan, [Contribution(1, 50, 3, 1.0)])
    held = fed.experts["a"]
    assert (held.examples_seen, held.version, dict(held.staleness)) == (0, 0, {})
    np.testing.assert_array_equal(held.weights["m.lora_B.weight"], W["m.lora_B.weight"])
    fed.publish("a", {k: v + 1 for k, v in W.items()}, [Contribution(1, 50, 3, 1.0)])
    assert (held.examples_seen, held.version, dict(held.staleness)) == (50, 1, {3: 1})
    fed.close()


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_allocator_settings_apply_on_linux_glibc():
    from fedmoe_flwr.server.memory import keep_freed_memory

    assert keep_freed_memory()
