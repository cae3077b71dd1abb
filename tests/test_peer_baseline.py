"""The peer baseline: Flower's own FedAvg (unmodified) over one global adapter."""

import json

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedmoe_flwr import contract as C
from fedmoe_flwr.config import ConfigError, parse_run_config
from fedmoe_flwr.server.artifacts import RunDirectory, load_adapter_weights
from fedmoe_flwr.server.peer import run_flower_fedavg
from fedmoe_flwr.weights import to_array_record
from strategies import check_strategy_name, strategy_class
from tests.fake_grid import INIT, KEYS, FakeGrid


class SyncGrid(FakeGrid):
    """FakeGrid whose send_and_receive answers at once (what Flower's FedAvg calls)."""

    def send_and_receive(self, messages, *, timeout=None):
        ids = self.push_messages(list(messages))
        replies = []
        while len(replies) < len(ids):
            replies += self.pull_messages(ids)
        return replies


def flower_node(specialty, step, examples, seen):
    def behave(msg):
        if msg.metadata.message_type == "query":
            info = ConfigRecord({C.SPECIALTY: specialty})
            return RecordDict({C.INFO: info, C.ADAPTER: to_array_record(INIT)}), 1
        seen.append(dict(msg.content[C.CONFIG]))
        arrays = msg.content[C.FLOWER_ARRAYS]
        trained = ArrayRecord({k: Array(a.numpy() + step) for k, a in arrays.items()})
        return RecordDict({C.FLOWER_ARRAYS: trained, C.METRICS: MetricRecord(
            {C.NUM_EXAMPLES: examples, C.TRAIN_LOSS: 1.0})}), 1
    return behave


def test_flower_fedavg_averages_the_global_adapter_by_examples(tmp_path):
    cfg = parse_run_config({"strategy.name": "flower-fedavg", "run.max-updates": 4,
                            "run.specialties": "python_expert,sql_expert",
                            "train.max-steps": 7, "run.keep-versions": 0})
    run_dir = RunDirectory(tmp_path, "peer", cfg.model, cfg.run.keep_versions)
    seen = []
    grid = SyncGrid({1: flower_node("python_expert", 1.0, 1, seen),
                     2: flower_node("sql_expert", 2.0, 3, seen)})
    summary = run_flower_fedavg(grid, cfg, run_dir)
    run_dir.close()
    # Two nodes, max 4 updates: 2 rounds; each round w <- (1 (w + 1) + 3 (w + 2)) / 4 = w + 1.75.
    assert summary["rounds"] == 2 and summary["updates"] == 4
    final = load_adapter_weights(run_dir.root / C.GLOBAL)
    np.testing.assert_allclose(final[KEYS[0]], 3.5)
    first = load_adapter_weights(run_dir.root / ".versions" / f"{C.GLOBAL}-v000001")
    np.testing.assert_allclose(first[KEYS[1]], 1.75)
    # Every node got Flower's round number and the run's training settings.
    assert {c["server-round"] for c in seen} == {1} and len(seen) == 4
    assert {c[C.MAX_STEPS] for c in seen} == {7}
    events = [json.loads(line) for line in (run_dir.root / "metrics.jsonl").open()]
    assert [e["version"] for e in events if e["event"] == "version"] == [1, 2]
    assert json.loads((run_dir.root / "summary.json").read_text())["strategy"] == "flower-fedavg"


def test_the_peer_is_a_valid_name_but_not_a_merge_policy():
    assert check_strategy_name("flower-fedavg") == "flower-fedavg"
    with pytest.raises(ConfigError, match="flower-fedavg"):
        check_strategy_name("fedprox")
    with pytest.raises(ConfigError, match="peer baseline"):
        strategy_class("flower-fedavg")


def test_no_specialty_may_be_called_global():
    with pytest.raises(ConfigError, match="global"):
        parse_run_config({"run.specialties": "python_expert,global"})


def test_registration_without_any_node_is_a_clear_error(tmp_path):
    cfg = parse_run_config({"strategy.name": "flower-fedavg", "run.register-timeout": 0.01})
    run_dir = RunDirectory(tmp_path, "none", cfg.model)
    with pytest.raises(RuntimeError, match="run.register-timeout"):
        run_flower_fedavg(SyncGrid({}), cfg, run_dir)
    run_dir.close()


