"""Flower ClientApp: a node that trains its specialty's LoRA expert on local data.

Thin wiring: read config -> get model -> load adapter -> train/evaluate ->
reply, with every message built and parsed by :mod:`fedmoe_flwr.contract`.
The model is loaded once per process and reused: a simulation actor and a
warm deployment worker (``fedmoe_flwr.node.worker``) keep their process
across messages; a stock ``flwr-clientapp`` process handles one.
"""

from __future__ import annotations

import os
import time

import torch
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from fedmoe_flwr.config import AppConfig, ConfigError, parse_run_config
from fedmoe_flwr.contract import (
    GLOBAL,
    EvalInstruction,
    EvalReply,
    Registration,
    TrainInstruction,
    TrainMetrics,
    TrainReply,
)
from fedmoe_flwr.logs import setup_logging
from fedmoe_flwr.lora import a_part, b_part, lora_signature
from fedmoe_flwr.node.adapters import get_adapter_weights, set_adapter_weights
from fedmoe_flwr.node.ddp import Job, RankError, close_groups, group_for
from fedmoe_flwr.node.embedding import domain_centroid
from fedmoe_flwr.node.model import LoadedModel, ensure_adapter, freeze_a, load_base
from fedmoe_flwr.node.overlap import (
    ContinuousTrainer,
    Progress,
    configured_trainer,
    paused,
    trainer_for,
)
from fedmoe_flwr.node.redteam import lie
from fedmoe_flwr.node.settings import NodeSettings, node_data, node_settings
from fedmoe_flwr.node.sim_overlap import simulated_exchange, start_node_trainer, wait_ready
from fedmoe_flwr.node.simulation import join_late, pacer
from fedmoe_flwr.node.training import TrainResult, TrainSpec, evaluate_loss, train_for_budget
from fedmoe_flwr.node.update import update_record
from fedmoe_flwr.node.worker import TASK_STARTED_ENV
from fedmoe_flwr.routing.ngrams import ngram_counts
from fedmoe_flwr.weights import weights_checksum

app = ClientApp()
EVAL_SLOT = "_eval"  # adapter name used to score adapters sent for evaluation
_first_message = True


def _process_seconds() -> float:
    """Start-up cost paid by this message before its handler ran.

    In a warm worker (``fedmoe_flwr.node.worker``): task acquisition -> handler
    (message pull, FAB install, app import on the first task).  In a process of
    its own (stock ``flwr-clientapp``, simulation): process creation -> handler
    for the process's first message, then 0.
    """
    started = os.environ.get(TASK_STARTED_ENV)
    if started:
        return max(0.0, time.time() - float(started))
    global _first_message
    if not _first_message:
        return 0.0
    _first_message = False
    import psutil

    return max(0.0, time.time() - psutil.Process().create_time())


def _setup(context: Context) -> tuple[AppConfig, NodeSettings, LoadedModel, float]:
    setup_logging()
    t0 = time.perf_counter()
    cfg = parse_run_config(context.run_config)
    if cfg.train.torch_threads:
        torch.set_num_threads(cfg.train.torch_threads)  # nodes sharing a machine share cores
    node = node_settings(dict(context.node_config), cfg)
    loaded = load_base(cfg.model, node.model_source)
    ensure_adapter(loaded, node.specialty, cfg.model)
    return cfg, node, loaded, time.perf_counter() - t0


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Registration: who this node is, what data it has, and its initial adapter."""
    cfg, node, loaded, _ = _setup(context)
    join_late(context.node_id, node.join_delay)  # simulation: a node that joins mid-run
    trainer = None
    if cfg.train.overlap and node.partition is not None:  # simulation: its own actor
        trainer = start_node_trainer(context.run_id, context.node_id,
                                     dict(context.run_config), dict(context.node_config),
                                     node.specialty)
    with paused():  # a training thread (train.overlap) waits at a step boundary
        reply = Message(_registration(cfg, node, loaded).to_content(), reply_to=msg)
    if trainer is not None:  # registered means ready to train, as a warm worker is
        wait_ready(trainer)
    return reply


def _registration(cfg: AppConfig, node: NodeSettings, loaded: LoadedModel) -> Registration:
    data, train_rows, eval_rows = node_data(node, cfg, loaded.tokenizer, loaded.fingerprint)
    prompts = list(data.train["prompt"])
    r = cfg.router
    centroid = (domain_centroid(loaded, prompts[: r.centroid_examples],
                                layer=r.embedding_layer) if r.centroid_examples else None)
    return Registration(
        node.specialty, len(train_rows), len(eval_rows), loaded.fingerprint,
        str(loaded.device), lora_signature(cfg.model),
        get_adapter_weights(loaded.peft_model, node.specialty), centroid,
        min(len(prompts), r.centroid_examples) if centroid is not None else 0,
        ngram_counts(prompts, r.ngram_buckets) if r.ngram_buckets else None)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Load the adapter's newest weights, train for the time budget, send the update."""
    process_s = _process_seconds()
    cfg, node, loaded, setup_s = _setup(context)
    t0 = time.perf_counter()
    instr, received = TrainInstruction.from_content(msg.content)
    if instr.adapter not in (node.specialty, GLOBAL):
        raise ConfigError(f"server asked for {instr.adapter!r}, this node trains "
                          f"{node.specialty!r}")
    _, train_rows, _ = node_data(node, cfg, loaded.tokenizer, loaded.fingerprint)
    ensure_adapter(loaded, instr.adapter, cfg.model)
    ffa = cfg.model.lora_variant == "ffa"
    if ffa:  # only B travels: A is the frozen one every node and the server share
        received = {**frozen_a(loaded, instr), **received}
    spec = TrainSpec(cfg.train.batch_size, instr.learning_rate, instr.time_budget,
                     instr.max_steps, instr.seed, cfg.train.prompt_loss_weight)
    load_s = setup_s + time.perf_counter() - t0
    if cfg.train.overlap:
        done = _overlapped(context, cfg, node, loaded, instr, received, train_rows, spec)
    else:
        done = _stop_and_wait(context, cfg, node, loaded, instr, received, train_rows, spec)
    loaded.peft_model.set_adapter(node.specialty)
    base, trained = (b_part(done.base), b_part(done.weights)) if ffa else (done.base,
                                                                            done.weights)
    if node.red_team:  # red-team tests of the robust checks: the node lies on purpose
        trained, _ = lie(node.red_team, base, trained, key=(context.run_id, instr.adapter),
                         max_update_norm=cfg.strategy.max_update_norm,
                         max_norm_ratio=cfg.robust.max_norm_ratio)
    record, is_delta, norm = update_record(base, trained, cfg.privacy, cfg.comm,
                                           context.state, instr.adapter)
    metrics = TrainMetrics(done.examples, done.loss, done.steps, done.tokens,
                           done.train_seconds, load_s, done.base_version, process_s,
                           os.getpid(), norm, done.in_flight_seconds)
    return Message(TrainReply(metrics, is_delta).to_content(record), reply_to=msg)


def _stop_and_wait(context: Context, cfg: AppConfig, node: NodeSettings,
                   loaded: LoadedModel, instr: TrainInstruction, received: dict, rows: list,
                   spec: TrainSpec) -> Progress:
    """Train from the received weights for the budget, then report (the default)."""
    ffa = cfg.model.lora_variant == "ffa"
    with paused():
        set_adapter_weights(loaded.peft_model, instr.adapter, received)
        if ffa:
            freeze_a(loaded, instr.adapter)
        if node.ranks > 1:  # one update on several devices (node config 'gpus')
            r = _ddp_train(context, node, loaded, Job(
                dict(context.run_config), dict(context.node_config), instr.adapter, spec, ffa),
                rows)
        else:
            r = train_for_budget(loaded.peft_model, rows,
                                 pad_id=loaded.tokenizer.pad_token_id, device=loaded.device,
                                 spec=spec, after_step=pacer(node.speed_factor,
                                                             cfg.sim.seconds_per_token))
        trained = get_adapter_weights(loaded.peft_model, instr.adapter)
    return Progress(trained, received, instr.version, r.steps, r.examples, r.tokens, r.loss,
                    r.seconds, 0.0)


def _ddp_train(context: Context, node: NodeSettings, loaded: LoadedModel, job: Job,
               rows: list) -> TrainResult:
    """Train on the node's rank group; a failed rank fails the task and the group goes."""
    try:
        group = group_for(node.ranks, job.run_config, job.node_config, loaded.device,
                          node.ddp_timeout)
        return group.train(loaded.peft_model, rows, loaded.tokenizer.pad_token_id, job)
    except Exception as err:
        close_groups()  # the next message builds a fresh group
        raise RankError(f"node {context.node_id}: DDP training on {node.ranks} ranks failed "
                        f"({err}); the rank group was torn down and is rebuilt on the next "
                        f"message") from err


def _overlapped(context: Context, cfg: AppConfig, node: NodeSettings, loaded: LoadedModel,
                instr: TrainInstruction, received: dict, rows: list,
                spec: TrainSpec) -> Progress:
    """Hand the weights to the node's training thread; reply at the sync boundary."""
    if node.ranks > 1:
        raise ConfigError("train.overlap with node config 'gpus' > 1 is not supported: the "
                          "overlapped thread trains on one device; use one or the other")
    if node.partition is not None:  # simulation: the pool actors serve any node
        return simulated_exchange(context.run_id, context.node_id, dict(context.run_config),
                                  dict(context.node_config), instr.adapter, received,
                                  instr.version, spec)
    if not os.environ.get(TASK_STARTED_ENV):
        raise ConfigError("train.overlap keeps training between messages, which needs one "
                          "process serving this node across them: a deployed SuperNode with "
                          "a warm worker (this node is cold: start it with a warm worker), "
                          "or a simulation")

    def make() -> ContinuousTrainer:
        return configured_trainer(loaded, instr.adapter, rows, spec, cfg)

    return trainer_for((context.run_id, context.node_id, instr.adapter), make) \
        .exchange(received, instr.version)


def frozen_a(loaded: LoadedModel, instr: TrainInstruction) -> dict:
    """The node's frozen ``A`` of the adapter, checked against the server's checksum."""
    held = a_part(get_adapter_weights(loaded.peft_model, instr.adapter))
    if weights_checksum(held) != instr.frozen_a:
        raise ConfigError(f"the frozen LoRA A of {instr.adapter!r} differs from the server's: "
                          f"every node of an ffa run must use the same model.* settings")
    return held


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Held-out loss of every adapter in the message on this node's eval split."""
    cfg, node, loaded, _ = _setup(context)
    _, _, eval_rows = node_data(node, cfg, loaded.tokenizer, loaded.fingerprint)
    instr, adapters = EvalInstruction.from_content(msg.content)
    with paused():  # a training thread (train.overlap) waits at a step boundary
        losses = _losses(cfg, node, loaded, eval_rows, instr, adapters)
    return Message(EvalReply(losses).to_content(), reply_to=msg)


def _losses(cfg: AppConfig, node: NodeSettings, loaded: LoadedModel, eval_rows: list,
            instr: EvalInstruction, adapters: dict) -> dict[str, float]:
    losses: dict[str, float] = {}
    for name, weights in adapters.items():
        rank, alpha = instr.shapes.get(name, (cfg.model.lora_r, cfg.model.lora_alpha))
        slot = f"{EVAL_SLOT}_r{rank}_a{alpha}"  # one scratch adapter per LoRA shape
        ensure_adapter(loaded, slot, cfg.model, rank, alpha)
        set_adapter_weights(loaded.peft_model, slot, weights)
        losses[name] = evaluate_loss(loaded.peft_model, eval_rows,
                                     pad_id=loaded.tokenizer.pad_token_id,
                                     device=loaded.device)
    loaded.peft_model.set_adapter(node.specialty)
    return losses
