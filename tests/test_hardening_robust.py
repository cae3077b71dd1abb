"""A registered node that lies, through the fake Grid: zeros, a sign flip, a rescaled change,
a replay and a huge centroid neither wipe nor steer the expert, the gateway or the routing.

Honest nodes learn a hidden target: each update moves the expert's weights part of the way
towards it, with a little noise of their own, so "held-out loss" here is the expert's squared
distance to the target relative to the target's size, computable by hand.
"""

import json

import numpy as np
import pytest

from fedmoe_flwr.contract import Registration, TrainInstruction, TrainMetrics, TrainReply
from fedmoe_flwr.routing.centroids import load_centroids, load_ngram_counts
from fedmoe_flwr.routing.ngrams import ngram_counts
from fedmoe_flwr.wire import to_array_record
from tests.fake_grid import INIT, KEYS, SIG, run

RNG_TARGET = np.random.default_rng(7)
TARGET = {KEYS[0]: INIT[KEYS[0]] + 0.0,  # A stays where it was initialised
          KEYS[1]: RNG_TARGET.normal(0, 0.05, INIT[KEYS[1]].shape).astype(np.float32)}
A_INIT = np.random.default_rng(3).normal(0, 0.1, INIT[KEYS[0]].shape).astype(np.float32)
START = {KEYS[0]: A_INIT, KEYS[1]: np.zeros_like(INIT[KEYS[1]])}  # LoRA: random A, zero B
TARGET[KEYS[0]] = A_INIT
PROMPTS = {"python_expert": ["def parse the list in python", "write a python function"],
           "sql_expert": ["select rows from the table", "join two tables in sql"]}
BUCKETS = 4096


def loss(weights):
    """Squared distance to the target over the target's squared norm."""
    num = sum(float(np.sum((weights[k] - TARGET[k]) ** 2)) for k in TARGET)
    return num / sum(float(np.sum(TARGET[k] ** 2)) for k in TARGET)


def _register(specialty, centroid=None, counts=None):
    unit = np.eye(4, dtype=np.float32)[0 if specialty == "python_expert" else 1]
    return Registration(specialty, 100, 10, "fp", "cpu", SIG, START,
                        unit if centroid is None else centroid, 8,
                        ngram_counts(PROMPTS[specialty], BUCKETS) if counts is None else counts)


LR = 0.05  # slow enough that the experts are still learning when the runs end


def honest(specialty, seed, lr=LR, delay=1):
    rng = np.random.default_rng(seed)

    def behave(msg):
        kind = msg.metadata.message_type
        if kind == "query":
            return _register(specialty).to_content(), 1
        if kind == "evaluate":
            from fedmoe_flwr.contract import EvalInstruction, EvalReply
            _, adapters = EvalInstruction.from_content(msg.content)
            return EvalReply({n: 1.0 for n in adapters}).to_content(), 1
        instr, w = TrainInstruction.from_content(msg.content)
        new = {k: w[k] + lr * (TARGET[k] - w[k]) +
               rng.normal(0, 0.002, w[k].shape).astype(np.float32) for k in w}
        return TrainReply(TrainMetrics(8, 1.0, 1, 10, 0.1, 0.0, instr.version), False) \
            .to_content(to_array_record(new)), delay

    return behave


def hostile(specialty, attacks, delay=1):
    """A registered node that sends its attacks in turn (then honest-looking zeros)."""
    inner = honest(specialty, seed=99)
    seen: list = []
    it = iter(attacks)

    def behave(msg):
        kind = msg.metadata.message_type
        if kind == "query":  # a huge, finite centroid and absurd n-gram counts
            return _register(specialty, centroid=np.full(4, 1e30, np.float32),
                             counts=np.full(BUCKETS, 1e30, np.float32)).to_content(), 1
        if kind != "train":
            return inner(msg)
        instr, w = TrainInstruction.from_content(msg.content)
        seen.append(w)
        honest_new = {k: w[k] + LR * (TARGET[k] - w[k]) for k in w}
        delta = {k: honest_new[k] - w[k] for k in w}
        attack = next(it, "zeros")
        new = {"zeros": lambda: {k: np.zeros_like(v) for k, v in w.items()},
               "flip": lambda: {k: w[k] - delta[k] for k in w},
               "rescale": lambda: {k: w[k] + 6.0 * delta[k] for k in w},
               "replay": lambda: seen[0]}[attack]()
        return TrainReply(TrainMetrics(8, 1.0, 1, 10, 0.1, 0.0, instr.version), False) \
            .to_content(to_array_record(new)), delay

    return behave


ROBUST = {"robust.enabled": True, "strategy.max-update-norm": 10.0,
          "run.specialties": "python_expert,sql_expert", "router.centroid-examples": 8,
          "router.ngram-buckets": BUCKETS}


def _pair(tmp_path, attacks, strategy="fedasync", updates=24, **extra):
    # The sql node registers (its routing statistics count) but its updates never arrive
    # within the run, so both runs merge exactly `updates` python updates.
    def honest_nodes():  # fresh nodes (and noise streams) for each run
        return {1: honest("python_expert", 1), 2: honest("python_expert", 2),
                3: honest("python_expert", 3), 4: honest("sql_expert", 4, delay=10**6)}

    common = {**ROBUST, "strategy.name": strategy, "run.max-updates": updates, **extra}
    clean = run(tmp_path / "clean", honest_nodes(), **common)
    attacked = run(tmp_path / "attacked", {**honest_nodes(), 9: hostile("python_expert",
                                                                         attacks)}, **common)
    return clean, attacked


def _routes(root, method):
    from fedmoe_flwr.config import RouterConfig
    from fedmoe_flwr.routing.router import Router, RouterSources

    questions = ["write a python list function", "select the rows of a join"]
    vectors = {q: np.eye(4, dtype=np.float32)[i] for i, q in enumerate(questions)}
    sources = RouterSources(centroids=lambda: load_centroids(root),
                            ngram_counts=lambda: load_ngram_counts(root),
                            embed=lambda ps: np.stack([vectors.get(p, vectors[questions[0]])
                                                       for p in ps]))
    router = Router(RouterConfig(method=method), ["python_expert", "sql_expert"], sources)
    return [r.best for r in router.route_many(questions)]


@pytest.mark.parametrize("strategy", ["fedasync", "fedbuff", "fedavg"])
def test_one_hostile_node_among_three_honest_ones_changes_nothing(tmp_path, strategy):
    extra = ({"strategy.fedbuff.aggregate": "median"} if strategy == "fedbuff" else
             {"strategy.fedavg.aggregate": "median", "strategy.fedavg.round-timeout": 1.0,
              "strategy.fedavg.sync-scope": "specialty"} if strategy == "fedavg" else {})
    (cl, cl_summary, _), (at, at_summary, events) = _pair(
        tmp_path, ["zeros", "flip", "rescale", "replay"], strategy, **extra)
    py_clean, py_attacked = cl.experts["python_expert"], at.experts["python_expert"]
    assert loss(py_clean.weights) < 0.6 * loss(START)  # the honest nodes did learn
    assert abs(loss(py_attacked.weights) - loss(py_clean.weights)) <= \
        0.02 * loss(py_clean.weights) + 1e-6, (loss(py_attacked.weights), loss(py_clean.weights))
    gw_a, gw_c = at.federation.gateway.weights, cl.federation.gateway.weights
    for k in gw_c:
        np.testing.assert_allclose(gw_a[k], gw_c[k], rtol=0.02, atol=1e-4)
    refused = at_summary["rejected"]
    assert sum(refused.values()) >= 3, refused  # every attack refused
    assert at.nodes.refused.get(9, "").startswith("quarantined"), at.nodes.refused
    root_a, root_c = at.run_dir.root, cl.run_dir.root
    for method in ("centroid", "ngrams"):
        assert _routes(root_a, method) == _routes(root_c, method) == ["python_expert",
                                                                      "sql_expert"]
    doc = json.loads((root_a / "router.json").read_text())
    assert doc["specialties"]["python_expert"]["nodes"] == 3  # the huge centroid was refused


@pytest.mark.parametrize(("attack", "reason"), [("zeros", "erases-expert"),
                                                ("flip", "against-expert"),
                                                ("rescale", "outlier-norm"),
                                                ("replay", "replay")])
def test_each_attack_is_refused_with_its_reason(tmp_path, attack, reason):
    _, (at, summary, _) = _pair(tmp_path, [attack] * 10, updates=16,
                                **{"robust.strikes": 1000})
    assert summary["rejected"].get(reason, 0) >= 1, summary["rejected"]
    assert set(summary["rejected"]) <= {reason, "erases-expert"}  # nothing honest refused


def test_honest_nodes_alone_are_never_refused(tmp_path):
    (cl, summary, events), _ = _pair(tmp_path, [], updates=30)
    assert summary["rejected"] == {}
    ups = [e for e in events if e["event"] == "update" and e["cos"] is not None]
    # Honest changes point along the expert's movement while it learns, and become noise
    # (cosine around 0, measured down to -0.17, -0.29 just after a resume) once it has
    # converged: the default bound (-0.4) leaves that room, and catches a replay or a flip
    # of a consistent change (-0.76 to -0.85 here).
    assert ups and min(e["cos"] for e in ups) > -0.3
    assert max(e["norm_ratio"] for e in ups) < 3.0 and min(e["keep"] for e in ups) > 0.5


def test_a_resumed_run_keeps_the_guards_memory_and_its_quarantines(tmp_path):
    # Run 1: three honest python nodes and a liar, quarantined after its lies. Its guard
    # (movement, norms, digests, strikes) is saved with the run. Run 2 resumes: the liar
    # stays refused, and a replay of a version of run 1 is still a replay.
    common = {**ROBUST, "run.max-updates": 20}
    nodes = {1: honest("python_expert", 1), 2: honest("python_expert", 2),
             3: honest("python_expert", 3), 4: honest("sql_expert", 4, delay=10**6)}
    first, _, _ = run(tmp_path / "a", {**nodes, 9: hostile("python_expert", ["flip"] * 6)},
                      **common)
    old = first.run_dir.root
    assert first.nodes.refused.get(9, "").startswith("quarantined")
    assert (old / "guard.safetensors").is_file()
    guard = first.desk.guard
    replayed = first.experts["python_expert"].weights  # a version run 1 published

    def replayer(msg):  # an honest-looking node that sends run 1's expert back
        if msg.metadata.message_type != "train":
            return honest("python_expert", 5)(msg)
        instr, _ = TrainInstruction.from_content(msg.content)
        return TrainReply(TrainMetrics(8, 1.0, 1, 10, 0.1, 0.0, instr.version), False) \
            .to_content(to_array_record(replayed)), 1

    second, summary, events = run(
        tmp_path / "b", {1: honest("python_expert", 1), 4: honest("sql_expert", 4, delay=10**6),
                         9: hostile("python_expert", ["flip"] * 6), 5: replayer},
        **{**common, "run.max-updates": 6, "run.resume-from": str(old)})
    assert second.nodes.refused.get(9, "").startswith("quarantined")  # before it sent a thing
    assert not [e for e in events if e["event"] == "update" and e["node"] == "9"]
    assert summary["rejected"].get("replay", 0) >= 1, summary["rejected"]
    restored = second.desk.guard
    assert restored.accepted["python_expert"] >= guard.accepted["python_expert"]
    assert set(guard.seen["python_expert"]) <= set(restored.seen["python_expert"])


def test_a_damaged_guard_file_refuses_the_resume_naming_it(tmp_path):
    from fedmoe_flwr.config import ConfigError

    first, _, _ = run(tmp_path / "a", {1: honest("python_expert", 1),
                                       4: honest("sql_expert", 4, delay=10**6)},
                      **{**ROBUST, "run.max-updates": 4})
    (first.run_dir.root / "guard.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match=r"guard\.safetensors is damaged"):
        run(tmp_path / "b", {1: honest("python_expert", 1)},
            **{**ROBUST, "run.max-updates": 2, "run.resume-from": str(first.run_dir.root)})
