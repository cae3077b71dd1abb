"""The peer baseline: Flower's own FedAvg, unmodified, training one global adapter.

What FlowerTune LLM and most federated LLM fine-tuning recipes do: every node
trains the same LoRA adapter on its own data and
:class:`flwr.serverapp.strategy.FedAvg` (as Flower ships it) averages the
replies weighted by ``num-examples``.  ``strategy.name = "flower-fedavg"``
runs it on the same nodes, model, data and training settings as the expert
strategies, so the async-vs-sync benchmark can show, measured, what one expert
per specialty buys over one adapter for everything.

Messages use Flower's own layout (``arrays`` / ``config`` records, one
``Array`` per key), which the ClientApp answers with its ``global`` adapter.
The rounds run one :meth:`FedAvg.start` call each, so the loop stops on
``run.duration`` and ``run.max-updates`` like every other strategy; each round's
global adapter is checkpointed as ``global/`` (a PEFT adapter, every version
kept when ``run.keep-versions = 0``) with a ``version`` event in
``metrics.jsonl``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from .. import contract as C
from ..config import AppConfig
from ..weights import Weights, from_array_record, to_flower_record, weights_nbytes
from .artifacts import RunDirectory

log = logging.getLogger("fedmoe")
POLL_S = 2.0


def register(grid: Grid, cfg: AppConfig) -> tuple[dict[int, str], Weights]:
    """Query online nodes until every configured specialty has one (or the timeout).

    Returns node id -> specialty and the initial adapter of the first node
    (every node builds the same one from the run's seed).
    """
    nodes: dict[int, str] = {}
    initial: Weights | None = None
    want = set(cfg.run.specialties)
    deadline = time.monotonic() + cfg.run.register_timeout
    while time.monotonic() < deadline and not want <= set(nodes.values()):
        new = [n for n in grid.get_node_ids() if n not in nodes]
        messages = [Message(RecordDict(), dst_node_id=n, message_type="query") for n in new]
        for reply in grid.send_and_receive(messages, timeout=cfg.run.register_timeout):
            if reply.has_error():
                log.warning("node %s did not register: %s", reply.metadata.src_node_id,
                            reply.error.reason)
                continue
            nodes[reply.metadata.src_node_id] = str(reply.content[C.INFO][C.SPECIALTY])
            if initial is None:
                initial = from_array_record(reply.content[C.ADAPTER])
        if not want <= set(nodes.values()):
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
    if initial is None:
        raise RuntimeError(f"no node registered within {cfg.run.register_timeout:.0f}s "
                           f"(run.register-timeout)")
    return nodes, initial


def train_config(cfg: AppConfig) -> ConfigRecord:
    """What every node is told each round (Flower adds ``server-round``)."""
    return ConfigRecord({C.TIME_BUDGET: cfg.train.sync_interval,
                         C.MAX_STEPS: cfg.train.max_steps,
                         C.LEARNING_RATE: cfg.train.learning_rate, C.SEED: cfg.run.seed})


def run_flower_fedavg(grid: Grid, cfg: AppConfig, run_dir: RunDirectory) -> dict[str, Any]:
    """Rounds of Flower's FedAvg over all registered nodes until the run's budget ends."""
    nodes, weights = register(grid, cfg)
    n = len(nodes)
    log.info("flower-fedavg: one global adapter on %d node(s) (%s)", n,
             ", ".join(sorted(set(nodes.values()))))
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n,
                      min_available_nodes=n)
    arrays = to_flower_record(weights)
    size = weights_nbytes(weights)  # per message each way (float32 throughout)
    run_dir.save_adapter(C.GLOBAL, weights, 0, {"version": 0, "nodes": n})
    t0, version = time.monotonic(), 0
    while time.monotonic() - t0 < cfg.run.duration and (
            not cfg.run.max_updates or version * n < cfg.run.max_updates):
        result = strategy.start(grid, initial_arrays=arrays, num_rounds=1,
                                timeout=cfg.run.message_ttl, train_config=train_config(cfg))
        if result.arrays is None or not len(result.arrays):
            raise RuntimeError("flower-fedavg: a round returned no weights (every node failed)")
        arrays, version = result.arrays, version + 1
        elapsed = time.monotonic() - t0
        weights = {k: a.numpy() for k, a in arrays.items()}
        run_dir.save_adapter(C.GLOBAL, weights, version, {"version": version, "nodes": n})
        run_dir.log_event("version", specialty=C.GLOBAL, version=version,
                          elapsed=round(elapsed, 3))
        log.info("%7.1fs  global adapter v%d (round of %d nodes)", elapsed, version, n)
    traffic = version * n * size
    summary = {"strategy": cfg.strategy.name, "rounds": version, "updates": version * n,
               "nodes": nodes, "bytes_sent": traffic, "bytes_received": traffic,
               "seconds": round(time.monotonic() - t0, 3)}
    run_dir.write_json("summary.json", summary)
    return summary
