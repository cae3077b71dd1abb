"""Flower ClientApp: a node that trains its specialty's LoRA expert on local data.

Thin wiring: read config -> get model -> load adapter -> train/evaluate ->
reply.  The model is loaded once per process and reused: a simulation actor
and a warm deployment worker (``fedmoe_flwr.node.worker``) keep their process
across messages; a stock ``flwr-clientapp`` process handles one.
"""

from __future__ import annotations

import os
import time
import zlib

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedmoe_flwr import contract as C
from fedmoe_flwr.codec import ErrorFeedback, decode
from fedmoe_flwr.config import AppConfig, ConfigError, parse_run_config
from fedmoe_flwr.logs import setup_logging
from fedmoe_flwr.lora import lora_signature
from fedmoe_flwr.node.adapters import get_adapter_weights, set_adapter_weights
from fedmoe_flwr.node.embedding import domain_centroid
from fedmoe_flwr.node.model import LoadedModel, ensure_adapter, load_base
from fedmoe_flwr.node.settings import NodeSettings, node_data, node_settings
from fedmoe_flwr.node.training import evaluate_loss, train_for_budget
from fedmoe_flwr.node.worker import TASK_STARTED_ENV
from fedmoe_flwr.privacy import privatize
from fedmoe_flwr.routing.ngrams import ngram_counts
from fedmoe_flwr.weights import Weights, from_array_record, to_array_record, to_flower_record

app = ClientApp()
EVAL_SLOT = "_eval"  # adapter name used to score adapters sent for evaluation
_first_message = True
_joined: set[int] = set()  # nodes this process registered (sim.join-delays applies once)
_FEEDBACK = ErrorFeedback()  # compression error owed per (node, specialty), for this process
_NOISE = np.random.default_rng()  # OS entropy: DP noise the server cannot reproduce


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
    if node.join_delay and context.node_id not in _joined:  # simulation: a late node
        time.sleep(node.join_delay)
    _joined.add(context.node_id)
    data, train_rows, eval_rows = node_data(node, cfg, loaded.tokenizer, loaded.fingerprint)
    sig = lora_signature(cfg.model)
    info = ConfigRecord({
        C.SPECIALTY: node.specialty, C.NUM_TRAIN: len(train_rows), C.NUM_EVAL: len(eval_rows),
        C.BASE_MODEL: cfg.model.name, C.MODEL_FINGERPRINT: loaded.fingerprint,
        C.LORA_R: sig["r"], C.LORA_ALPHA: sig["alpha"], C.LORA_TARGETS: sig["target_modules"],
        C.DEVICE: str(loaded.device), C.SPEED_FACTOR: node.speed_factor,
        C.DATA_PATH: str(node.data_path), C.SKIPPED_LINES: data.skipped,
    })
    records = {C.INFO: info,
               C.ADAPTER: to_array_record(get_adapter_weights(loaded.peft_model, node.specialty))}
    if cfg.router.centroid_examples:  # the centroid router's domain summary: one vector
        prompts = list(data.train["prompt"][: cfg.router.centroid_examples])
        mean = domain_centroid(loaded, prompts, layer=cfg.router.embedding_layer)
        records[C.CENTROID] = to_array_record({"mean": mean})
        info[C.CENTROID_COUNT] = len(prompts)
    if cfg.router.ngram_buckets:  # the ngrams router's statistics: one count vector
        records[C.NGRAMS] = to_array_record({"counts": ngram_counts(
            data.train["prompt"], cfg.router.ngram_buckets)})
    return Message(RecordDict(records), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Load the expert's newest weights, train for the time budget, send them back."""
    process_s = _process_seconds()
    cfg, node, loaded, setup_s = _setup(context)
    if C.FLOWER_ARRAYS in msg.content.array_records:  # Flower's FedAvg (strategy flower-fedavg)
        return _train_global(msg, context.node_id, cfg, node, loaded)
    instr = msg.content[C.CONFIG]
    if instr[C.SPECIALTY] != node.specialty:
        raise ConfigError(f"server asked for {instr[C.SPECIALTY]!r}, this node trains "
                          f"{node.specialty!r}")
    t0 = time.perf_counter()
    _, train_rows, _ = node_data(node, cfg, loaded.tokenizer, loaded.fingerprint)
    received = decode(msg.content[C.ADAPTER])  # float32 or float16 on the wire
    set_adapter_weights(loaded.peft_model, node.specialty, received)
    load_s = setup_s + time.perf_counter() - t0
    result = train_for_budget(
        loaded.peft_model, train_rows, pad_id=loaded.tokenizer.pad_token_id,
        device=loaded.device, batch_size=cfg.train.batch_size,
        learning_rate=float(instr[C.LEARNING_RATE]), time_budget=float(instr[C.TIME_BUDGET]),
        max_steps=int(instr[C.MAX_STEPS]), seed=int(instr[C.SEED]),
        speed_factor=node.speed_factor, prompt_weight=cfg.train.prompt_loss_weight,
        seconds_per_token=cfg.sim.seconds_per_token)
    metrics = MetricRecord({
        C.NUM_EXAMPLES: result.examples, C.TRAIN_LOSS: result.loss, C.STEPS: result.steps,
        C.TOKENS: result.tokens, C.TRAIN_SECONDS: result.seconds, C.LOAD_SECONDS: load_s,
        C.BASE_VERSION: int(instr[C.VERSION]), C.PROCESS_SECONDS: process_s,
        C.PROCESS_ID: os.getpid(),
    })
    name, record = _update_record(cfg, context.node_id, node.specialty, received,
                                  get_adapter_weights(loaded.peft_model, node.specialty), metrics)
    return Message(RecordDict({name: record, C.METRICS: metrics}), reply_to=msg)


def _train_global(msg: Message, node_id: int, cfg: AppConfig, node: NodeSettings,
                  loaded: LoadedModel) -> Message:
    """One round of the peer baseline: train the one global adapter on this node's data.

    Same training as an expert's (budget, steps, learning rate, speed), but the
    weights come and go in Flower's own layout for its unmodified FedAvg.
    """
    instr = msg.content[C.CONFIG]
    ensure_adapter(loaded, C.GLOBAL, cfg.model)
    set_adapter_weights(loaded.peft_model, C.GLOBAL, from_array_record(
        msg.content[C.FLOWER_ARRAYS]))
    _, train_rows, _ = node_data(node, cfg, loaded.tokenizer, loaded.fingerprint)
    # Flower sends every node the same config: the node adds its id (as dispatch.py does).
    seed = zlib.crc32(f"{instr[C.SEED]}:{node_id}:{instr['server-round']}".encode())
    result = train_for_budget(
        loaded.peft_model, train_rows, pad_id=loaded.tokenizer.pad_token_id,
        device=loaded.device, batch_size=cfg.train.batch_size,
        learning_rate=float(instr[C.LEARNING_RATE]), time_budget=float(instr[C.TIME_BUDGET]),
        max_steps=int(instr[C.MAX_STEPS]), seed=seed, speed_factor=node.speed_factor,
        prompt_weight=cfg.train.prompt_loss_weight,
        seconds_per_token=cfg.sim.seconds_per_token)
    trained = get_adapter_weights(loaded.peft_model, C.GLOBAL)
    loaded.peft_model.set_adapter(node.specialty)
    return Message(RecordDict({
        C.FLOWER_ARRAYS: to_flower_record(trained),
        C.METRICS: MetricRecord({C.NUM_EXAMPLES: result.examples, C.TRAIN_LOSS: result.loss}),
    }), reply_to=msg)


def _update_record(cfg: AppConfig, node_id: int, specialty: str, received: Weights,
                   trained: Weights, metrics: MetricRecord) -> tuple[str, ArrayRecord]:
    """What leaves the node: the adapter, or its (private, compressed) change.

    Privacy clips and noises the delta before anything else sees it; compression
    then encodes that private delta, carrying its rounding error to the next
    update (post-processing: the guarantee is unchanged).
    """
    p, compression = cfg.privacy, cfg.comm.compression
    if not p.enabled and compression == "none":
        return C.ADAPTER, to_array_record(trained)
    delta = {k: trained[k] - received[k] for k in trained}
    if p.enabled:
        delta, norm = privatize(delta, p.clip, p.noise_multiplier, _NOISE)
        metrics[C.DELTA_NORM] = norm
    if compression == "none":
        return C.ADAPTER, to_array_record({k: received[k] + d for k, d in delta.items()})
    return C.DELTA, _FEEDBACK.compress((node_id, specialty), delta, compression)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Held-out loss of every adapter in the message on this node's eval split."""
    cfg, node, loaded, _ = _setup(context)
    _, _, eval_rows = node_data(node, cfg, loaded.tokenizer, loaded.fingerprint)
    instr = msg.content[C.CONFIG]
    losses: dict[str, float] = {}
    for name, record in msg.content.array_records.items():
        if not name.startswith(C.EVAL_PREFIX) or not isinstance(record, ArrayRecord):
            continue
        adapter = name.removeprefix(C.EVAL_PREFIX)
        rank = int(instr.get(C.EVAL_RANK_PREFIX + adapter, cfg.model.lora_r))
        alpha = int(instr.get(C.EVAL_ALPHA_PREFIX + adapter, cfg.model.lora_alpha))
        slot = f"{EVAL_SLOT}_r{rank}_a{alpha}"  # one scratch adapter per LoRA shape
        ensure_adapter(loaded, slot, cfg.model, rank, alpha)
        set_adapter_weights(loaded.peft_model, slot, from_array_record(record))
        losses[adapter] = evaluate_loss(
            loaded.peft_model, eval_rows, pad_id=loaded.tokenizer.pad_token_id,
            device=loaded.device)
    loaded.peft_model.set_adapter(node.specialty)
    return Message(RecordDict({C.EVAL_LOSSES: MetricRecord(losses)}), reply_to=msg)
