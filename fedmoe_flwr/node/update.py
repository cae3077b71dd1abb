"""What leaves a node after training: the adapter, or its private and compressed change.

Privacy clips and noises the delta before anything else sees it; compression
then encodes that private delta, carrying its rounding error to the next
update (post-processing: the guarantee is unchanged).  The rounding error a
node still owes is kept in the node's Flower ``context.state``, which Flower
keeps per node across messages in simulation (whichever actor runs the
message) and in deployment (the SuperNode holds it), so the server does
receive everything the node learned.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedmoe_flwr.codec import compress_with_feedback
from fedmoe_flwr.config import CommConfig, PrivacyConfig
from fedmoe_flwr.privacy import privatize
from fedmoe_flwr.weights import Weights
from fedmoe_flwr.wire import from_array_record, to_array_record

_NOISE = np.random.default_rng()  # OS entropy: DP noise the server cannot reproduce
OWED_PREFIX = "fedmoe.owed."  # context.state ArrayRecord per adapter: compression error owed


def update_record(received: Weights, trained: Weights, privacy: PrivacyConfig,
                  comm: CommConfig, state: Any, adapter: str) -> tuple[Any, bool, float]:
    """``(record, is_delta, delta norm before clipping or -1)`` for the train reply.

    ``state`` is the node's ``context.state`` (a RecordDict); ``adapter`` keys
    the error owed, so a node that trains two adapters keeps them apart.
    """
    compression = comm.compression
    if not privacy.enabled and compression == "none":
        return to_array_record(trained), False, -1.0
    delta = {k: trained[k] - received[k] for k in trained}
    norm = -1.0
    if privacy.enabled:  # central DP: the node clips, the server adds the noise to a sum
        z = privacy.noise_multiplier if privacy.mode == "local" else 0.0
        delta, norm = privatize(delta, privacy.clip, z, _NOISE)
    if compression == "none":
        return to_array_record({k: received[k] + d for k, d in delta.items()}), False, norm
    key = OWED_PREFIX + adapter
    owed = from_array_record(state.array_records[key]) if key in state.array_records else None
    record, owed = compress_with_feedback(delta, owed, compression)
    state.array_records[key] = to_array_record(owed)
    return record, True, norm


def owed_error(state: Any, adapter: str) -> Weights | None:
    """The rounding error a node carries into its next update of ``adapter`` (tests, logs)."""
    key = OWED_PREFIX + adapter
    return from_array_record(state.array_records[key]) if key in state.array_records else None
