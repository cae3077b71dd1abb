"""Train messages: which nodes get one, and what it holds."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedmoe_flwr import contract as C
from fedmoe_flwr.config import AppConfig
from fedmoe_flwr.server.experts import ExpertState
from fedmoe_flwr.server.ledger import PrivacyLedger
from fedmoe_flwr.server.messenger import Flight, Messenger
from fedmoe_flwr.server.nodes import NodeInfo, NodeTable
from strategies.base import Member, Strategy


def dispatch(grid: Grid, cfg: AppConfig, strategy: Strategy, nodes: NodeTable,
             experts: dict[str, ExpertState], messenger: Messenger, ledger: PrivacyLedger,
             clock: Callable[[], float]) -> None:
    """Send the nodes the strategy selects their expert's newest weights.

    Nodes out of privacy budget are not members any more: a synchronous
    strategy does not wait for them.
    """
    busy = messenger.busy("train")
    members = [Member(n.node_id, n.specialty) for n in nodes.registered.values()
               if n.specialty in experts and ledger.may_train(n.node_id)]
    idle = [m for m in members if m.node_id not in busy]
    chosen = strategy.select(idle, members, clock()) if idle else []
    messenger.push(grid, [train_message(cfg, messenger, nodes.registered[m.node_id],
                                        experts[m.specialty], clock()) for m in chosen])


def train_message(cfg: AppConfig, messenger: Messenger, node: NodeInfo, expert: ExpertState,
                  now: float) -> tuple[Message, Flight]:
    """A train instruction: the expert's newest weights, version and the training budget."""
    t = cfg.train
    # Seeded by the node's rank in its specialty, not its (random) node id: see NodeInfo.rank.
    seed = zlib.crc32(f"{cfg.run.seed}:{node.specialty}:{node.rank}:{expert.version}".encode())
    record, sent = expert.record(cfg.comm.compression)
    content = RecordDict({
        C.ADAPTER: record,
        C.CONFIG: ConfigRecord({
            C.SPECIALTY: node.specialty, C.VERSION: expert.version,
            C.TIME_BUDGET: t.sync_interval, C.MAX_STEPS: t.max_steps,
            C.LEARNING_RATE: t.learning_rate, C.SEED: seed,
        }),
    })
    return (messenger.message(content, node.node_id, "train"),
            Flight(node.node_id, "train", now, node.specialty, expert.version,
                   base_weights=sent, bytes_out=record.count_bytes()))
