"""Exports for serving engines: vLLM's rank steps, llama.cpp's query/key row order."""

import numpy as np
import pytest

from fedmoe_flwr.server.rundir import RunDirError
from fedmoe_flwr.tools.serving_exports import _permute, vllm_rank


def test_vllm_rank_rounds_up_to_what_vllm_accepts():
    assert [vllm_rank(r) for r in (1, 8, 9, 24, 64, 300)] == [8, 8, 16, 32, 64, 320]
    with pytest.raises(RunDirError, match="largest"):
        vllm_rank(1024)


@pytest.mark.parametrize(("heads", "kv"), [(9, 9), (9, 3)])
def test_the_llama_row_order_is_what_transformers_gguf_loader_undoes(heads, kv):
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rows = (kv if kv != heads else heads) * 64
    b = np.random.default_rng(0).normal(size=(rows, 8)).astype(np.float32)
    undo = LlamaTensorProcessor({"num_attention_heads": heads, "num_key_value_heads": kv})
    back = undo._reverse_permute_weights(_permute(b, kv), heads, kv)
    np.testing.assert_array_equal(back, b)
    assert not np.array_equal(_permute(b, kv), b)
