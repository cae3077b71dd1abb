"""Update validation: every malformed update is rejected with a countable reason."""

import numpy as np
import pytest

from fedmoe_flwr.merge.validation import UpdateRejected, validate_update

REF = {"x.lora_A.weight": np.zeros((2, 4), np.float32),
       "x.lora_B.weight": np.zeros((4, 2), np.float32)}


def check(update, base=1, current=2):
    validate_update(REF, update, base_version=base, current_version=current)


def test_valid_update_passes():
    check({k: v + 1 for k, v in REF.items()})


@pytest.mark.parametrize(
    ("update", "kwargs", "reason"),
    [
        (dict(REF), {"base": 3, "current": 2}, "bad-version"),
        ({"x.lora_A.weight": REF["x.lora_A.weight"]}, {}, "wrong-keys"),
        ({**REF, "x.lora_A.weight": np.zeros((4, 2), np.float32)}, {}, "wrong-shape"),
        ({**REF, "x.lora_A.weight": np.zeros((2, 4), np.int32)}, {}, "wrong-dtype"),
        ({**REF, "x.lora_B.weight": np.full((4, 2), np.nan, np.float32)}, {}, "non-finite"),
        ({**REF, "x.lora_B.weight": np.full((4, 2), np.inf, np.float32)}, {}, "non-finite"),
    ],
)
def test_rejections(update, kwargs, reason):
    with pytest.raises(UpdateRejected) as info:
        check(update, **kwargs)
    assert info.value.reason == reason
