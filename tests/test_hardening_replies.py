"""Hostile and broken replies through the fake Grid: the loop survives every one, counts it,
and the experts and the gateway on disk stay finite, loadable and checksummed."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedmoe_flwr.config import parse_run_config
from fedmoe_flwr.lora import lora_signature
from fedmoe_flwr.server.rundir import RunView
from fedmoe_flwr.wire import from_array_record, to_array_record
from tests.fake_grid import INIT, KEYS, make_node, run

SIG = lora_signature(parse_run_config({}).model)


class C:
    """The wire's record and key names, spelt out as a hostile node would write them."""

    INFO, ADAPTER, METRICS, EVAL_LOSSES = "info", "adapter", "metrics", "eval-losses"
    SPECIALTY, NUM_TRAIN, NUM_EVAL = "specialty", "num-train-examples", "num-eval-examples"
    MODEL_FINGERPRINT, DEVICE = "model-fingerprint", "device"
    LORA_R, LORA_ALPHA, LORA_TARGETS = "lora-r", "lora-alpha", "lora-target-modules"
    NUM_EXAMPLES, BASE_VERSION, TRAIN_LOSS = "num-examples", "base-version", "train-loss"
    STEPS, TRAIN_SECONDS = "steps", "train-seconds"
STEP = 0.01  # a realistic change: well inside the default norm bound


def info(**changes):
    base = {C.SPECIALTY: "docs_expert", C.NUM_TRAIN: 100, C.NUM_EVAL: 10,
            C.MODEL_FINGERPRINT: "fp", C.LORA_R: SIG.r, C.LORA_ALPHA: SIG.alpha,
            C.LORA_TARGETS: SIG.target_modules, C.DEVICE: "cpu"}
    base.update(changes)
    return ConfigRecord({k: v for k, v in base.items() if v is not DROP})


DROP = object()


def packed_garbage():
    return ArrayRecord({"packed": Array(np.zeros(4, np.float32)),
                        "packed-index": Array(np.frombuffer(b"[[1, 2]]", np.uint8))})


def record(weights):
    return ArrayRecord({k: Array(np.asarray(v)) for k, v in weights.items()})


def w(scale=0.0, dtype=np.float32, **replace):
    out = {k: np.full(v.shape, scale, dtype) for k, v in INIT.items()}
    out.update(replace)
    return out


# Registration replies of the first docs node (so its initial adapter would found the expert):
# (name, content, refusal reason prefix)
BAD_REGISTRATIONS = [
    ("no info record", RecordDict({C.ADAPTER: to_array_record(INIT)}), "malformed"),
    ("num-train NaN", RecordDict({C.INFO: info(**{C.NUM_TRAIN: float("nan")}),
                                  C.ADAPTER: to_array_record(INIT)}), "out-of-range"),
    ("num-train negative", RecordDict({C.INFO: info(**{C.NUM_TRAIN: -1}),
                                       C.ADAPTER: to_array_record(INIT)}), "out-of-range"),
    ("num-train 1e15", RecordDict({C.INFO: info(**{C.NUM_TRAIN: 10**15}),
                                   C.ADAPTER: to_array_record(INIT)}), "out-of-range"),
    ("num-train text", RecordDict({C.INFO: info(**{C.NUM_TRAIN: "100"}),
                                   C.ADAPTER: to_array_record(INIT)}), "malformed"),
    ("num-train fraction", RecordDict({C.INFO: info(**{C.NUM_TRAIN: 10.5}),
                                       C.ADAPTER: to_array_record(INIT)}), "malformed"),
    ("num-eval missing", RecordDict({C.INFO: info(**{C.NUM_EVAL: DROP}),
                                     C.ADAPTER: to_array_record(INIT)}), "malformed"),
    ("specialty path", RecordDict({C.INFO: info(**{C.SPECIALTY: "../sql_expert"}),
                                   C.ADAPTER: to_array_record(INIT)}), "bad-specialty"),
    ("specialty empty", RecordDict({C.INFO: info(**{C.SPECIALTY: ""}),
                                    C.ADAPTER: to_array_record(INIT)}), "bad-specialty"),
    ("specialty number", RecordDict({C.INFO: info(**{C.SPECIALTY: 5}),
                                     C.ADAPTER: to_array_record(INIT)}), "malformed"),
    ("specialty unknown", RecordDict({C.INFO: info(**{C.SPECIALTY: "rust_expert"}),
                                      C.ADAPTER: to_array_record(INIT)}), "unknown-specialty"),
    ("device missing", RecordDict({C.INFO: info(**{C.DEVICE: DROP}),
                                   C.ADAPTER: to_array_record(INIT)}), "malformed"),
    ("fingerprint missing", RecordDict({C.INFO: info(**{C.MODEL_FINGERPRINT: DROP}),
                                        C.ADAPTER: to_array_record(INIT)}), "malformed"),
    ("other fingerprint", RecordDict({C.INFO: info(**{C.MODEL_FINGERPRINT: "other"}),
                                      C.ADAPTER: to_array_record(INIT)}), "base-mismatch"),
    ("other LoRA rank", RecordDict({C.INFO: info(**{C.LORA_R: 4}),
                                    C.ADAPTER: to_array_record(INIT)}), "lora-mismatch"),
    ("no initial adapter", RecordDict({C.INFO: info()}), "malformed"),
    ("adapter of rank 2", RecordDict({C.INFO: info(), C.ADAPTER: to_array_record(
        {KEYS[0]: np.zeros((2, 64), np.float32), KEYS[1]: np.zeros((64, 2), np.float32)})}),
     "wrong-shape"),
    ("NaN adapter", RecordDict({C.INFO: info(), C.ADAPTER: to_array_record(w(np.nan))}),
     "non-finite"),
    ("inf adapter", RecordDict({C.INFO: info(), C.ADAPTER: to_array_record(w(np.inf))}),
     "non-finite"),
    ("float64 1e300 adapter", RecordDict({C.INFO: info(), C.ADAPTER: record(
        w(1e300, np.float64))}), "non-finite"),
    ("int adapter", RecordDict({C.INFO: info(), C.ADAPTER: record(w(0, np.int32))}),
     "wrong-dtype"),
    ("adapter keys of another model", RecordDict({C.INFO: info(), C.ADAPTER: to_array_record(
        {"x.lora_A.weight": np.zeros((8, 4), np.float32),
         "x.lora_B.weight": np.zeros((4, 8), np.float32)})}), "wrong-keys"),
    ("adapter without B", RecordDict({C.INFO: info(), C.ADAPTER: to_array_record(
        {KEYS[0]: np.zeros((8, 64), np.float32)})}), "wrong-keys"),
    ("garbage packed index", RecordDict({C.INFO: info(), C.ADAPTER: packed_garbage()}),
     "malformed"),
]


def refuse_once(content):
    def behave(msg):
        if msg.metadata.message_type == "query":
            return content, 1
        raise AssertionError("a refused node must not get other messages")
    return behave


@pytest.mark.parametrize(("name", "content", "reason"), BAD_REGISTRATIONS,
                         ids=[r[0] for r in BAD_REGISTRATIONS])
def test_bad_registration_is_refused_with_a_reason(tmp_path, name, content, reason):
    nodes = {1: make_node("python_expert", step=STEP), 2: make_node("sql_expert", step=STEP),
             9: refuse_once(content)}
    loop, summary, _ = run(tmp_path, nodes, **{
        "run.max-updates": 2, "strategy.max-update-norm": 10.0, "run.register-timeout": 5.0,
        "run.specialties": "python_expert,sql_expert,docs_expert"})
    assert loop.nodes.refused[9].startswith(reason), loop.nodes.refused[9]
    assert "docs_expert" not in loop.experts
    assert summary["refused"]["9"].startswith(reason)
    assert_on_disk_ok(tmp_path)


def assert_on_disk_ok(tmp_path):
    view = RunView(tmp_path / "run")
    for name in view.names():
        weights = view.adapter(name).weights()  # verifies the checksum in meta.json
        assert all(np.isfinite(v).all() for v in weights.values()), name


def train_reply(mutate):
    """A sql node whose second train reply is rewritten by ``mutate(weights, metrics)``."""
    inner = make_node("sql_expert", step=STEP)
    count = {"n": 0}

    def behave(msg):
        content, delay = inner(msg)
        if msg.metadata.message_type != "train":
            return content, delay
        count["n"] += 1
        if count["n"] != 2:
            return content, delay
        weights = from_array_record(content[C.ADAPTER])
        metrics = dict(content.metric_records[C.METRICS])
        return mutate(weights, metrics), delay

    return behave


def with_metrics(**changes):
    def mutate(weights, metrics):
        metrics.update(changes)
        return RecordDict({C.ADAPTER: to_array_record(weights),
                           C.METRICS: MetricRecord({k: v for k, v in metrics.items()
                                                    if v is not DROP})})
    return mutate


def with_weights(fn, packed=True):
    def mutate(weights, metrics):
        new = fn(weights)
        return RecordDict({C.ADAPTER: to_array_record(new) if packed else record(new),
                           C.METRICS: MetricRecord(metrics)})
    return mutate


def raw(content):
    return lambda weights, metrics: content


BAD_UPDATES = [
    ("no metrics", raw(RecordDict({C.ADAPTER: to_array_record(INIT)})), "malformed"),
    ("no adapter", raw(RecordDict({C.METRICS: MetricRecord({C.NUM_EXAMPLES: 8})})),
     "malformed"),
    ("empty reply", raw(RecordDict({})), "malformed"),
    ("num-examples NaN", with_metrics(**{C.NUM_EXAMPLES: float("nan")}), "out-of-range"),
    ("num-examples inf", with_metrics(**{C.NUM_EXAMPLES: float("inf")}), "out-of-range"),
    ("num-examples negative", with_metrics(**{C.NUM_EXAMPLES: -8}), "out-of-range"),
    ("num-examples zero", with_metrics(**{C.NUM_EXAMPLES: 0}), "out-of-range"),
    ("num-examples 1e15", with_metrics(**{C.NUM_EXAMPLES: 10**15}), "out-of-range"),
    ("num-examples fraction", with_metrics(**{C.NUM_EXAMPLES: 2.5}), "malformed"),
    ("num-examples missing", with_metrics(**{C.NUM_EXAMPLES: DROP}), "malformed"),
    ("base-version NaN", with_metrics(**{C.BASE_VERSION: float("nan")}), "out-of-range"),
    ("base-version negative", with_metrics(**{C.BASE_VERSION: -1}), "out-of-range"),
    ("base-version from the future", with_metrics(**{C.BASE_VERSION: 10**6}), "bad-version"),
    ("base-version fraction", with_metrics(**{C.BASE_VERSION: 0.5}), "malformed"),
    ("train-loss NaN", with_metrics(**{C.TRAIN_LOSS: float("nan")}), "out-of-range"),
    ("train-loss inf", with_metrics(**{C.TRAIN_LOSS: float("inf")}), "out-of-range"),
    ("steps NaN", with_metrics(**{C.STEPS: float("nan")}), "out-of-range"),
    ("train-seconds negative", with_metrics(**{C.TRAIN_SECONDS: -1.0}), "out-of-range"),
    ("huge update 1e30", with_weights(lambda x: {k: v + 1e30 for k, v in x.items()}),
     "too-large"),
    ("update x1e6", with_weights(lambda x: {k: (v + 1) * 1e6 for k, v in x.items()}),
     "too-large"),
    ("float64 1e300", with_weights(lambda x: {k: np.full(v.shape, 1e300) for k, v in x.items()},
                                   packed=False), "non-finite"),
    ("NaN weights", with_weights(lambda x: {k: v * np.nan for k, v in x.items()}),
     "non-finite"),
    ("one inf", with_weights(lambda x: {**x, KEYS[0]: np.where(
        np.arange(x[KEYS[0]].size).reshape(x[KEYS[0]].shape) == 3, np.inf, x[KEYS[0]])}),
     "non-finite"),
    ("wrong shape", with_weights(lambda x: {k: v.T for k, v in x.items()}), "wrong-shape"),
    ("int weights", with_weights(lambda x: {k: v.astype(np.int32) for k, v in x.items()},
                                 packed=False), "wrong-dtype"),
    ("missing key", with_weights(lambda x: {KEYS[0]: x[KEYS[0]]}), "wrong-keys"),
    ("extra key", with_weights(lambda x: {**x, "evil.lora_A.weight": np.zeros(2, np.float32)}),
     "wrong-keys"),
    ("garbage packed index", raw(RecordDict({C.ADAPTER: packed_garbage(),
                                             C.METRICS: MetricRecord({})})), "malformed"),
    ("metrics as text", raw(RecordDict({C.ADAPTER: to_array_record(INIT),
                                        C.METRICS: ConfigRecord({C.NUM_EXAMPLES: "8"})})),
     "malformed"),
]


@pytest.mark.parametrize(("name", "mutate", "reason"), BAD_UPDATES,
                         ids=[r[0] for r in BAD_UPDATES])
def test_bad_update_is_rejected_counted_and_harmless(tmp_path, name, mutate, reason):
    nodes = {1: make_node("python_expert", step=STEP), 2: train_reply(mutate)}
    loop, summary, events = run(tmp_path, nodes, **{"run.max-updates": 6,
                                                    "strategy.max-update-norm": 10.0})
    assert summary["rejected"] == {reason: 1}, summary["rejected"]
    assert any(e["event"] == "rejected" and e["reason"] == reason for e in events)
    assert loop.experts["sql_expert"].version >= 2  # the node went on training
    assert_on_disk_ok(tmp_path)


def test_inflated_example_count_is_capped_by_what_the_node_registered(tmp_path):
    nodes = {1: make_node("python_expert", step=STEP),
             2: train_reply(with_metrics(**{C.NUM_EXAMPLES: 10**9}))}
    loop, summary, _ = run(tmp_path, nodes, **{"run.max-updates": 6,
                                               "strategy.max-update-norm": 10.0})
    assert summary["examples_capped"] == 1
    sql = loop.experts["sql_expert"]
    assert sql.examples_seen <= 100 + 8 * sql.updates  # registered 100, honest updates 8


def test_bad_evaluation_reply_is_counted(tmp_path):
    inner = make_node("sql_expert", step=STEP)

    def behave(msg):
        if msg.metadata.message_type == "evaluate":
            return RecordDict({C.EVAL_LOSSES: MetricRecord({"sql_expert": float("nan")})}), 1
        return inner(msg)

    _, summary, _ = run(tmp_path, {1: make_node("python_expert", step=STEP), 2: behave},
                        **{"run.max-updates": 4, "strategy.max-update-norm": 10.0})
    assert summary["rejected"] == {"eval-out-of-range": 2}  # initial and final evaluation


def test_one_hostile_node_among_good_ones_leaves_the_others_as_without_it(tmp_path):
    """A second python node sends only huge, NaN and inflated-example-NaN updates."""
    def hostile():
        inner = make_node("python_expert", step=STEP, delay=1)
        attacks = iter([lambda x: {k: v + 1e30 for k, v in x.items()},
                        lambda x: {k: v * np.nan for k, v in x.items()},
                        lambda x: {k: (v + 1) * 1e6 for k, v in x.items()}])

        def behave(msg):
            content, delay = inner(msg)
            if msg.metadata.message_type != "train":
                return content, delay
            attack = next(attacks, lambda x: {k: v * np.inf for k, v in x.items()})
            metrics = dict(content.metric_records[C.METRICS])
            metrics[C.NUM_EXAMPLES] = 10**9
            return RecordDict({C.ADAPTER: to_array_record(attack(from_array_record(
                content[C.ADAPTER]))), C.METRICS: MetricRecord(metrics)}), delay
        return behave

    common = {"run.max-updates": 24, "strategy.max-update-norm": 10.0}
    good = {1: make_node("python_expert", step=STEP), 2: make_node("sql_expert", step=STEP),
            3: make_node("docs_expert", step=STEP)}
    specs = {"run.specialties": "python_expert,sql_expert,docs_expert"}
    clean, _, _ = run(tmp_path / "clean", dict(good), **common, **specs)
    attacked, summary, _ = run(tmp_path / "attacked", {**good, 4: hostile()}, **common, **specs)
    assert summary["rejected"]["too-large"] >= 2 and summary["rejected"]["non-finite"] >= 2
    assert summary["updates"] == 24
    for name in ("python_expert", "sql_expert", "docs_expert"):
        a, b = attacked.experts[name].weights, clean.experts[name].weights
        for k in a:
            assert np.isfinite(a[k]).all()
            np.testing.assert_allclose(a[k], b[k], rtol=0.01, atol=1e-6)
    ga, gb = attacked.federation.gateway.weights, clean.federation.gateway.weights
    for k in ga:
        np.testing.assert_allclose(ga[k], gb[k], rtol=0.01, atol=1e-6)
    assert_on_disk_ok(tmp_path / "attacked")
