"""An in-process ``Grid`` with scripted nodes, and a runner of the server loop on it.

Each node is a function ``(message) -> (reply content or Error, delay)``; a
reply becomes visible ``delay`` pulls after it was pushed, so tests control
the arrival order (out of order, stale, lost) without threads or sleeps.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable

import numpy as np
from flwr.app import Error, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

import strategies  # noqa: F401  (registers the built-in strategies)
from fedmoe_flwr.codec import encode
from fedmoe_flwr.config import parse_run_config
from fedmoe_flwr.contract import (
    EvalInstruction,
    EvalReply,
    Registration,
    TrainInstruction,
    TrainMetrics,
    TrainReply,
)
from fedmoe_flwr.lora import lora_signature
from fedmoe_flwr.server.artifacts import RunDirectory
from fedmoe_flwr.server.loop import FederationLoop
from fedmoe_flwr.server.policy import build_strategy
from fedmoe_flwr.server.resume import load_resume_state
from fedmoe_flwr.wire import to_array_record

Behaviour = Callable[[Message], tuple[RecordDict | Error, int]]


class FakeGrid(Grid):
    def __init__(self, nodes: dict[int, Behaviour]) -> None:
        # Message() reads the run/node/task identity a Flower runtime would set.
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
        self.nodes = dict(nodes)
        self.tick = 0
        self.pending: list[tuple[int, int, Message]] = []  # (ready tick, seq, reply)
        self.pushed: list[Message] = []
        self._ids = itertools.count()

    def set_run(self, run):  # pragma: no cover - not used by the strategies
        self._run = run

    @property
    def run(self):  # pragma: no cover
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id=dst_node_id, message_type=message_type)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg_id = f"m{next(self._ids)}"
            msg.metadata.__dict__["_message_id"] = msg_id
            self.pushed.append(msg)
            ids.append(msg_id)
            behaviour = self.nodes.get(msg.metadata.dst_node_id)
            if behaviour is None:
                continue  # node gone: no reply ever
            result, delay = behaviour(msg)
            reply = (Message(result, reply_to=msg) if isinstance(result, Error)
                     else Message(result, reply_to=msg))
            self.pending.append((self.tick + delay, next(self._ids), reply))
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self.tick += 1
        wanted = set(message_ids)
        ready = sorted((p for p in self.pending if p[0] <= self.tick
                        and p[2].metadata.reply_to_message_id in wanted), key=lambda p: p[:2])
        self.pending = [p for p in self.pending if p not in ready]
        return [p[2] for p in ready]

    def send_and_receive(self, messages, *, timeout=None):  # pragma: no cover
        raise NotImplementedError


KEYS = ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
INIT = {KEYS[0]: np.zeros((8, 64), np.float32), KEYS[1]: np.zeros((64, 8), np.float32)}  # r = 8
SIG = lora_signature(parse_run_config({}).model)


def make_node(specialty, *, delay=1, step=1.0, corrupt=None, error_on_train=None, examples=8,
              join_delay=1, compression=None):
    """A scripted node: trains by adding `step` to every weight.

    ``join_delay``: pulls before its registration reply arrives (a node that joins late).
    ``compression``: reply with the delta in that encoding instead of the weights.
    """
    sig = lora_signature(parse_run_config({}).model)
    state = {"trains": 0}

    def behave(msg):
        kind = msg.metadata.message_type
        if kind == "query":
            reg = Registration(specialty, 100, 10, "fp", "cpu", sig, INIT)
            return reg.to_content(), join_delay
        if kind == "evaluate":
            _, adapters = EvalInstruction.from_content(msg.content)
            return EvalReply({n: 1.0 for n in adapters}).to_content(), 1
        state["trains"] += 1
        if error_on_train and state["trains"] == error_on_train:
            return Error(code=5, reason="node unavailable"), delay
        instr, received = TrainInstruction.from_content(msg.content)
        weights = {k: v + step for k, v in received.items()}
        if corrupt and state["trains"] == 1:
            weights = corrupt(weights)
        metrics = TrainMetrics(examples, 1.0, 1, 10, 0.1, 0.0, instr.version)
        if compression:
            delta = {k: weights[k] - received[k] if np.shape(received.get(k)) == np.shape(v)
                     else v for k, v in weights.items()}  # a corrupt shape travels as it is
            return TrainReply(metrics, True).to_content(encode(delta, compression)), delay
        return TrainReply(metrics, False).to_content(to_array_record(weights)), delay

    return behave


def run(tmp_path, nodes, plot=False, grids=None, **overrides):
    """Run the loop on scripted nodes; ``plot`` draws progress.png (slow: matplotlib).

    ``grids``: a list the FakeGrid is appended to (to read the messages pushed).
    """
    # Scripted nodes add whole numbers to every weight: far over the real norm bound, and
    # every node's change is the same, which the robust checks would call a replay.
    cfg = parse_run_config({"run.duration": 1e6, "run.drain-timeout": 5.0,
                            "strategy.max-update-norm": 0.0, "robust.enabled": False,
                            "run.specialties": "python_expert,sql_expert", **overrides})
    run_dir = RunDirectory(tmp_path, "run", cfg.model)
    now = [0.0]
    resume = (load_resume_state(cfg.run.resume_from, cfg.model, cfg.run.specialties,
                                cfg.run.allow_new_specialties)
              if cfg.run.resume_from else None)
    strategy = build_strategy(cfg)
    loop = FederationLoop(
        cfg=cfg, run_dir=run_dir, strategy=strategy, clock=lambda: now[0],
        sleep=lambda dt: now.__setitem__(0, now[0] + dt), poll_interval=0.05, resume=resume,
        draw_plot=plot)
    grid = FakeGrid(nodes)
    if grids is not None:
        grids.append(grid)
    summary = loop.run(grid)
    run_dir.close()
    events = [json.loads(line) for line in (run_dir.root / "metrics.jsonl").open()]
    return loop, summary, events
