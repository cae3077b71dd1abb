"""What a node sends after training: weights, or its private / compressed delta."""

import numpy as np
from flwr.app import MetricRecord

from client_app import _update_record
from fedmoe_flwr import contract as C
from fedmoe_flwr.codec import decode
from fedmoe_flwr.config import parse_run_config

RECEIVED = {"m.lora_A.weight": np.ones((8, 32), np.float32),
            "m.lora_B.weight": np.zeros((32, 8), np.float32)}
TRAINED = {k: v + 0.5 for k, v in RECEIVED.items()}  # delta 0.5 in 512 entries
NORM = 0.5 * 512 ** 0.5  # 11.31
CLIPPED = 0.5 * 2.0 / NORM  # each entry after clipping to norm 2


def _send(overrides, node=1):
    metrics = MetricRecord({})
    name, record = _update_record(parse_run_config(overrides), node, "sql_expert", RECEIVED,
                                  TRAINED, metrics)
    return name, decode(record), metrics


def test_default_sends_the_trained_weights():
    name, got, metrics = _send({})
    assert name == C.ADAPTER and C.DELTA_NORM not in metrics
    for k in TRAINED:
        np.testing.assert_array_equal(got[k], TRAINED[k])


def test_privacy_without_compression_sends_received_plus_the_clipped_delta():
    name, got, metrics = _send({"privacy.clip": 2.0})
    assert name == C.ADAPTER and abs(metrics[C.DELTA_NORM] - NORM) < 1e-6
    for k in TRAINED:
        np.testing.assert_allclose(got[k] - RECEIVED[k], CLIPPED, rtol=1e-6)


def test_int8_sends_the_private_delta_compressed():
    name, got, _ = _send({"comm.compression": "int8", "privacy.clip": 2.0}, node=2)
    assert name == C.DELTA
    for k in TRAINED:
        np.testing.assert_allclose(got[k], CLIPPED, rtol=1e-2)
    name, got, _ = _send({"comm.compression": "fp16"}, node=3)
    assert name == C.DELTA
    for k in TRAINED:
        np.testing.assert_allclose(got[k], 0.5, rtol=1e-3)
