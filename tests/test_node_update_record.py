"""What a node sends after training: weights, or its private / compressed delta, with the
compression error it still owes kept in the node's own state (Flower's context.state)."""

import numpy as np
from flwr.app import RecordDict

from fedmoe_flwr.codec import decode
from fedmoe_flwr.config import parse_run_config
from fedmoe_flwr.node.update import owed_error, update_record

RECEIVED = {"m.lora_A.weight": np.ones((8, 32), np.float32),
            "m.lora_B.weight": np.zeros((32, 8), np.float32)}
TRAINED = {k: v + 0.5 for k, v in RECEIVED.items()}  # delta 0.5 in 512 entries
NORM = 0.5 * 512 ** 0.5  # 11.31
CLIPPED = 0.5 * 2.0 / NORM  # each entry after clipping to norm 2


def _send(overrides, state=None, trained=TRAINED):
    cfg = parse_run_config(overrides)
    state = RecordDict() if state is None else state
    record, is_delta, norm = update_record(RECEIVED, trained, cfg.privacy, cfg.comm, state,
                                           "sql_expert")
    return is_delta, decode(record), norm


def test_default_sends_the_trained_weights():
    is_delta, got, norm = _send({})
    assert not is_delta and norm == -1.0
    for k in TRAINED:
        np.testing.assert_array_equal(got[k], TRAINED[k])


def test_privacy_without_compression_sends_received_plus_the_clipped_delta():
    is_delta, got, norm = _send({"privacy.clip": 2.0})
    assert not is_delta and abs(norm - NORM) < 1e-6
    for k in TRAINED:
        np.testing.assert_allclose(got[k] - RECEIVED[k], CLIPPED, rtol=1e-6)


def test_int8_sends_the_private_delta_compressed():
    is_delta, got, _ = _send({"comm.compression": "int8", "privacy.clip": 2.0})
    assert is_delta
    for k in TRAINED:
        np.testing.assert_allclose(got[k], CLIPPED, rtol=1e-2)
    is_delta, got, _ = _send({"comm.compression": "fp16"})
    assert is_delta
    for k in TRAINED:
        np.testing.assert_allclose(got[k], 0.5, rtol=1e-3)


def test_the_error_owed_lives_in_the_nodes_state_and_is_sent_next_time():
    # Two messages of one node handled by different processes share only context.state:
    # what the first rounding lost arrives with the second update.
    state = RecordDict()
    rng = np.random.default_rng(0)  # values int8 cannot hit exactly, so rounding leaves a rest
    trained = {k: v + rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in RECEIVED.items()}
    _, first, _ = _send({"comm.compression": "int8"}, state, trained)
    owed = owed_error(state, "sql_expert")
    assert owed is not None and any(np.abs(v).max() > 0 for v in owed.values())
    carried = RecordDict()
    carried.array_records.update(state.array_records)  # the state Flower hands the next message
    _, second, _ = _send({"comm.compression": "int8"}, carried, trained)
    for k in RECEIVED:
        np.testing.assert_allclose(first[k] + second[k] + owed_error(carried, "sql_expert")[k],
                                   2 * (trained[k] - RECEIVED[k]), atol=1e-6)
    assert owed_error(RecordDict(), "sql_expert") is None
