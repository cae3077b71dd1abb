"""Train messages: which nodes get one, and what it holds."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flwr.serverapp import Grid

from fedmoe_flwr.config import TrainConfig
from fedmoe_flwr.contract import TrainInstruction
from fedmoe_flwr.lora import a_part
from fedmoe_flwr.server.experts import ExpertState
from fedmoe_flwr.server.ledger import PrivacyLedger
from fedmoe_flwr.server.messenger import Flight, Messenger
from fedmoe_flwr.server.nodes import NodeInfo, NodeTable
from fedmoe_flwr.server.policy import Member, Strategy
from fedmoe_flwr.weights import weights_checksum


@dataclass(frozen=True)
class TrainPlan:
    """What every train message says besides the weights: budget, rate, seeds, encoding."""

    train: TrainConfig
    seed: int  # run.seed
    compression: str  # comm.compression: what the server sends (fp16 when compressing)
    frozen_a: bool = False  # model.lora-variant = ffa: send B only, with A's checksum


class Dispatcher:
    """Sends the nodes the strategy selects their adapter's newest weights.

    Nodes out of privacy budget are not members any more: a synchronous
    strategy does not wait for them.
    """

    def __init__(self, plan: TrainPlan, messenger: Messenger, ledger: PrivacyLedger,
                 clock: Callable[[], float]) -> None:
        self.plan = plan
        self.messenger = messenger
        self.ledger = ledger
        self.clock = clock
        self._a_digest: dict[str, str] = {}  # ffa: each adapter's frozen A, hashed once

    def send(self, grid: Grid, strategy: Strategy, nodes: NodeTable,
             experts: Mapping[str, ExpertState]) -> None:
        """Ask the strategy which idle members train now, and push their messages."""
        busy = self.messenger.busy("train")
        members = [Member(n.node_id, n.specialty, n.adapter) for n in nodes.registered.values()
                   if n.adapter in experts and self.ledger.may_train(n.node_id)]
        idle = [m for m in members if m.node_id not in busy]
        chosen = strategy.select(idle, members, self.clock()) if idle else []
        self.messenger.push(grid, [self.message(nodes.registered[m.node_id],
                                                experts[m.adapter]) for m in chosen])

    def message(self, node: NodeInfo, expert: ExpertState) -> tuple[object, Flight]:
        """A train instruction: the adapter's newest weights, version and the budget."""
        t = self.plan.train
        # Seeded by the node's rank in its specialty, not its (random) node id: NodeInfo.rank.
        seed = zlib.crc32(f"{self.plan.seed}:{node.specialty}:{node.rank}:"
                          f"{expert.version}".encode())
        ffa = self.plan.frozen_a
        record, sent = self.messenger.weights_record(expert.specialty, expert.version,
                                                     expert.weights, self.plan.compression,
                                                     b_only=ffa)
        digest = ""
        if ffa:
            a = a_part(expert.weights)
            digest = self._a_digest.setdefault(expert.specialty, weights_checksum(a))
            sent = {**a, **sent}  # what the node trains from: its own A, the sent B
        instruction = TrainInstruction(node.adapter, expert.version, t.sync_interval,
                                       t.max_steps, t.learning_rate, seed, digest)
        return (self.messenger.message(instruction.to_content(record), node.node_id, "train"),
                Flight(node.node_id, "train", self.clock(), node.adapter, expert.version,
                       base_weights=sent, bytes_out=record.count_bytes()))
