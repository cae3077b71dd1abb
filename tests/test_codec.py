"""Compressed updates: fp16 / int8 encodings, their bytes, error feedback, and hostile records."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord

from fedmoe_flwr.codec import SCALES, _quantize, compress_with_feedback, decode, encode
from fedmoe_flwr.wire import INDEX, PACKED

RNG = np.random.default_rng(0)
W = {"m.lora_A.weight": RNG.normal(size=(8, 512)).astype(np.float32),
     "m.lora_B.weight": RNG.normal(size=(1024, 8)).astype(np.float32)}
FP32_BYTES = sum(v.nbytes for v in W.values())


def _bytes(record):
    return record.count_bytes()


def test_int8_codes_and_scales_hand_computed():
    # one scale per row of a wide matrix: max |x| / 127
    codes, scales = _quantize(np.array([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]], np.float32))
    np.testing.assert_allclose(scales, [2 / 127, 0.0])
    np.testing.assert_array_equal(codes, [[64, -127, 32], [0, 0, 0]])  # 1 / (2/127) = 63.5 -> 64
    # a tall matrix gets one scale per column
    _, scales = _quantize(np.array([[1.0], [-4.0], [2.0]], np.float32))
    np.testing.assert_allclose(scales, [4 / 127])


@pytest.mark.parametrize("compression, ratio, tolerance",
                         [("none", 1.01, 0.0), ("fp16", 0.51, 1e-3), ("int8", 0.27, 1 / 127)])
def test_roundtrip_error_and_bytes(compression, ratio, tolerance):
    record = encode(W, compression)
    back = decode(record)
    for key, value in W.items():
        assert back[key].dtype == np.float32 and back[key].shape == value.shape
        err = np.abs(back[key] - value).max() / np.abs(value).max()
        assert err <= tolerance, (key, err)
    assert _bytes(record) <= ratio * FP32_BYTES


def test_error_feedback_sends_what_was_lost_next_time():
    delta = {k: v * 1e-3 for k, v in W.items()}
    total_sent = {k: np.zeros_like(v) for k, v in W.items()}
    owed = None
    for _ in range(20):  # the same change twenty times: the sum of what arrives tracks 20x it
        record, owed = compress_with_feedback(delta, owed, "int8")
        sent = decode(record)
        for k in total_sent:
            total_sent[k] += sent[k]
    for k, v in delta.items():  # sent + still owed == everything the node learned
        np.testing.assert_allclose(total_sent[k] + owed[k], 20 * v, rtol=1e-4, atol=1e-7)
        assert np.abs(owed[k]).max() <= np.abs(20 * v).max() / 127  # at most one step behind


def _int8_record(codes, scales, index):
    return ArrayRecord({PACKED: Array(np.asarray(codes, np.int8)),
                        SCALES: Array(np.asarray(scales, np.float32)),
                        INDEX: Array(np.frombuffer(index.encode(), np.uint8))})


@pytest.mark.parametrize("record, match", [
    (_int8_record([1, 2, 3], [1.0], '[["k", [2, 2]]]'), "needs more"),
    (_int8_record([1, 2, 3, 4, 5], [1.0, 1.0], '[["k", [2, 2]]]'), "covers"),
    (_int8_record([1, 2], [1.0], '[["k", [2]], ["k", [0]]]'), "bad packed index"),
    (_int8_record([1, 2], [1.0], '{"k": 1}'), "must be a list"),
])
def test_malformed_int8_records_are_refused(record, match):
    with pytest.raises(ValueError, match=match):
        decode(record)


def test_nan_scale_decodes_to_nan_which_the_server_then_rejects():
    record = _int8_record([1, 2], [np.nan], '[["k", [2]]]')
    assert np.isnan(decode(record)["k"]).all()  # the update's validation says "non-finite"


def test_a_compressed_index_that_inflates_without_bound_is_refused():
    import zlib

    bomb = zlib.compress(b"[" + b" " * (65 * 2**20), 9)  # ~65 KiB that inflate to 65 MiB
    record = _int8_record([1, 2], [1.0], "[]")
    record[INDEX] = Array(np.frombuffer(bomb, np.uint8))
    with pytest.raises(ValueError, match="inflates beyond"):
        decode(record)
