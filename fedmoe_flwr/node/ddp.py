"""One node, several devices: a group of training ranks makes one update together (DDP).

A node started with node config ``gpus = N`` (or ``"all"``) trains each update
on N devices, as ``torchrun --nproc_per_node=N`` would: the process that
handles the ClientApp's messages is rank 0 (it receives the weights, replies,
and keeps error feedback and privacy state), and it keeps N-1 more rank
processes alive across messages, each with its own copy of the 4-bit base
model and the tokenised data, so a warm node pays for loading once.

Per train message:

1. rank 0 sends the job (run config, adapter, :class:`TrainSpec`) to every
   rank over its control pipe, and broadcasts the adapter's tensors;
2. each step draws one global batch of ``batch-size x N`` rows (the same
   seeded :class:`~fedmoe_flwr.node.training.Batches` on every rank) and rank
   ``r`` trains on rows ``r::N`` of it (DistributedSampler semantics);
3. ``DistributedDataParallel`` all-reduces the LoRA gradients during backward.
   Each rank's loss is scaled by ``N * w_rank / w_global`` (its share of the
   batch's token weight, all-reduced before the forward), so the averaged
   gradient is exactly the one a single device gets on the whole global batch;
4. rank 0 alone watches the clock: its stop decision rides on the same tiny
   all-reduce, so the time budget is the node's, not each rank's.

Why DDP is built per message with everything but the active adapter ignored:
the base model is frozen and quantised, so syncing it would move gigabytes for
nothing, and the node switches adapters between messages (its specialty, a
scratch adapter for evaluation), which changes the trainable set DDP's reducer
is built for.  Building it costs one shape check; the weights arrive by the
explicit broadcast, so DDP's own start-up sync is off.

Failures: a rank that dies makes rank 0's next collective fail, and one that
hangs makes it time out (node config ``ddp-timeout``); either way the train
task fails with an error (the server drops the node and lets it rejoin), the
group is torn down and the next message builds a new one.  Ranks die with
their parent (``PR_SET_PDEATHSIG`` and the control pipe closing), so stopping
a SuperNode or its worker leaves no orphan.  NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from fedmoe_flwr.node.training import (
    Batches,
    TrainResult,
    TrainSpec,
    collate,
    token_weights,
    weighted_lm_loss,
)

log = logging.getLogger("fedmoe.ddp")
READY_POLL_S = 0.5  # how often rank 0 checks that its ranks are still alive while waiting


class RankError(RuntimeError):
    """A training rank died, hung or raised: the group is torn down and rebuilt."""


@dataclass(frozen=True)
class Job:
    """What every rank needs to train one update (the weights follow by broadcast)."""

    run_config: dict
    node_config: dict
    adapter: str
    spec: TrainSpec
    freeze_a: bool


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def visible_devices(world: int, device: torch.device) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each rank (rank 0 keeps the handler's own).

    Each rank sees exactly one GPU, so the one code path (``cuda`` = device 0)
    serves every rank; on CPUs nothing is set.
    """
    if device.type != "cuda":
        return [None] * world
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s.strip() for s in listed.split(",")] if listed else \
        [str(i) for i in range(torch.cuda.device_count())]
    if world > len(ids):
        raise RankError(f"node config 'gpus' asks for {world} ranks but this machine has "
                        f"{len(ids)} GPU(s) visible")
    return [None, *ids[1:world]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: the kernel kills this rank when the process that started it ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _init_group(rank: int, world: int, port: int, backend: str, timeout: float) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(world))
    dist.init_process_group(backend, rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout))


class RankGroup:
    """Rank 0 (this process) and its N-1 rank processes, kept across messages."""

    def __init__(self, world: int, run_config: dict, node_config: dict,
                 device: torch.device, timeout: float) -> None:
        self.world, self.device, self.timeout = world, device, timeout
        self.backend = backend_for(device)
        cuda = visible_devices(world, device)
        port = _free_port()
        ctx = mp.get_context("spawn")  # never fork a process that holds a model and threads
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        for rank in range(1, world):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=rank_main, name=f"fedmoe-rank-{rank}", daemon=True,
                               args=(rank, world, port, self.backend, timeout, cuda[rank],
                                     run_config, node_config, child))
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        try:
            _init_group(0, world, port, self.backend, timeout)
            self._wait_all("loaded", timeout + 600.0)  # a 7B base takes a while to load
        except BaseException:
            self.close()
            raise
        _RETIRED.clear()  # their gloo threads went idle while this group came up
        log.info("DDP group of %d ranks (%s) ready: pids %s", world, self.backend,
                 self.pids())

    def pids(self) -> list[int]:
        """Process ids of every rank, rank 0 (this process) first."""
        return [os.getpid(), *(p.pid for p in self.procs)]

    def alive(self) -> bool:
        """Whether every rank process still runs."""
        return all(p.is_alive() for p in self.procs)

    def _wait_all(self, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for rank, (conn, proc) in enumerate(zip(self.conns, self.procs, strict=True), 1):
            while not conn.poll(READY_POLL_S):
                if not proc.is_alive():
                    raise RankError(f"DDP rank {rank} (pid {proc.pid}) exited with code "
                                    f"{proc.exitcode} before it was {what}")
                if time.monotonic() > deadline:
                    raise RankError(f"DDP rank {rank} (pid {proc.pid}) was not {what} within "
                                    f"{timeout:.0f}s")
            try:
                kind, detail = conn.recv()
            except (EOFError, OSError):
                raise RankError(f"DDP rank {rank} (pid {proc.pid}) closed its pipe before it "
                                f"was {what}") from None
            if kind == "error":
                raise RankError(f"DDP rank {rank} (pid {proc.pid}) failed: {detail}")
            if kind != what:
                raise RankError(f"DDP rank {rank} answered {kind!r}, expected {what!r}")

    def train(self, model: Any, rows: list[dict], pad_id: int, job: Job) -> TrainResult:
        """Train the active adapter on all ranks; rank 0's model holds the result."""
        if not self.alive():
            raise RankError("a DDP rank process exited between messages")
        for conn in self.conns:
            conn.send(("train", job))
        self._wait_all("ready", self.timeout)
        result = train_rank(model, rows, pad_id=pad_id, device=self.device, job=job)
        self._wait_all("done", self.timeout)
        return result

    def close(self) -> None:
        """End every rank process and the process group (no orphans, by pid)."""
        import torch.distributed as dist

        for conn in self.conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("stop", None))
                conn.close()
        for proc in self.procs:
            proc.join(timeout=2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5.0)
        if dist.is_initialized():
            _retire_process_group()
        self.conns, self.procs = [], []


def _retire_process_group() -> None:
    """End the process group, but let the process keep a reference to it for a while.

    After a rank died, one of gloo's worker threads may still be destroying the
    failed collective, which needs the GIL.  Should the last reference to the
    group go at that moment (when the failed step's DDP reducer is freed, with
    the exception that carries it), the group's destructor joins that thread
    while holding the GIL, and the node deadlocks for good (seen: a train task
    that never returned).  Kept in :data:`_RETIRED`, the group is freed only
    when the next group is ready, long after its threads went idle.
    """
    import torch.distributed as dist

    with contextlib.suppress(Exception):
        _RETIRED.append(dist.group.WORLD)
        dist.destroy_process_group()


_RETIRED: list[Any] = []  # process groups of closed rank groups, freed once a new one is up


_GROUP: dict[tuple, RankGroup] = {}  # per process: one group, kept while its key holds


def group_for(world: int, run_config: dict, node_config: dict, device: torch.device,
              timeout: float) -> RankGroup:
    """The node's live rank group, rebuilt when it broke or the node's setup changed."""
    key = (world, tuple(sorted(node_config.items())), device.type, timeout)
    group = _GROUP.get(key)
    if group is not None and group.alive():
        return group
    close_groups()
    _GROUP[key] = RankGroup(world, run_config, node_config, device, timeout)
    return _GROUP[key]


def close_groups() -> None:
    """Tear down this process's rank group, if any (after a failure, or to stop)."""
    while _GROUP:
        _, group = _GROUP.popitem()
        group.close()


def broadcast_adapter(model: Any, adapter: str) -> None:
    """Rank 0's weights of the adapter (trainable or frozen) to every rank."""
    import torch.distributed as dist

    for _, param in sorted((n, p) for n, p in model.named_parameters()
                           if f".{adapter}." in n):
        dist.broadcast(param.data, src=0)


def ddp_module(model: Any) -> Any:
    """DDP over the trainable parameters only (see the module docstring for why)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    ignored = [n for n, p in model.named_parameters() if not p.requires_grad]
    ignored += [n for n, _ in model.named_buffers()]
    DDP._set_params_and_buffers_to_ignore_for_model(model, ignored)
    return DDP(model, init_sync=False)  # buffers are all ignored: nothing to sync


def train_rank(model: Any, rows: list[dict], *, pad_id: int, device: torch.device,
               job: Job) -> TrainResult:
    """One rank's share of a DDP update; every rank returns the same global totals.

    The loop mirrors :func:`~fedmoe_flwr.node.training.train_for_budget` (seeded
    batches, clipping at 1.0, AdamW) with the global batch split across ranks.
    """
    import torch.distributed as dist

    from fedmoe_flwr.node.training import optimizer_for

    rank, world, spec = dist.get_rank(), dist.get_world_size(), job.spec
    broadcast_adapter(model, job.adapter)
    torch.manual_seed(spec.seed)
    batches = Batches(len(rows), spec.batch_size * world, spec.seed)
    params, optimizer = optimizer_for(model, spec.learning_rate)
    net = ddp_module(model)
    model.train()
    t0, steps = time.perf_counter(), 0
    totals = torch.zeros(4, dtype=torch.float64)  # loss sum, real tokens, examples, padded
    compute = 0.0
    while True:
        mine, batch, weights = _share(rows, batches.next(), rank, world, pad_id, device,
                                      spec.prompt_weight)
        stop = rank == 0 and steps > 0 and (
            (spec.max_steps and steps >= spec.max_steps)
            or time.perf_counter() - t0 >= spec.time_budget)
        shared = torch.tensor([float(weights[:, 1:].sum()), float(stop)], device=device,
                              dtype=torch.float64)
        dist.all_reduce(shared)  # the batch's token weight, and rank 0's stop decision
        if shared[1] > 0:
            break
        step_cpu = time.process_time()
        logits = net(input_ids=batch["input_ids"],
                     attention_mask=batch["attention_mask"]).logits
        local = weighted_lm_loss(logits, batch["input_ids"], weights)
        loss = local * (float(weights[:, 1:].sum()) * world / max(float(shared[0]), 1e-8))
        loss.backward()  # DDP averages the LoRA gradients over the ranks here
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        compute += time.process_time() - step_cpu
        steps += 1
        totals += torch.tensor([float(loss.detach()) / world,
                                float(batch["attention_mask"].sum()) if mine else 0.0,
                                float(len(mine)),
                                float(batch["input_ids"].numel()) if mine else 0.0],
                               dtype=torch.float64)
    del net
    totals = totals.to(device)
    dist.all_reduce(totals)
    loss_sum, tokens, examples, padded = (float(v) for v in totals.cpu())
    return TrainResult(loss=loss_sum / steps, steps=steps, tokens=int(tokens),
                       examples=int(examples), seconds=time.perf_counter() - t0,
                       compute_seconds=compute, padded_tokens=int(padded))


def _share(rows: list[dict], picked: list[int], rank: int, world: int, pad_id: int,
           device: torch.device, prompt_weight: float) -> tuple[list[int], dict, torch.Tensor]:
    """Rows ``r::N`` of the global batch for rank ``r``, collated, and their token weights.

    A rank whose share is empty (the end of an epoch) still joins the backward
    pass, on one row with zero weight: DDP needs every rank in every all-reduce.
    """
    mine = picked[rank::world]
    share = [rows[i] for i in (mine or picked[:1])]
    batch = collate(share, pad_id, device)
    weights = token_weights(batch["labels"], [int(r.get("prompt_len", 0)) for r in share],
                            prompt_weight)
    if not mine:
        weights.zero_()
    return mine, batch, weights


def rank_main(rank: int, world: int, port: int, backend: str, timeout: float,
              cuda_visible: str | None, run_config: dict, node_config: dict,
              conn: Any) -> None:
    """A training rank: load once, then train each job rank 0 sends, until told to stop."""
    _die_with_parent()
    from fedmoe_flwr.logs import setup_logging

    setup_logging()  # a rank is a fresh interpreter: as quiet as the handler that started it
    if cuda_visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_visible
    try:
        _init_group(rank, world, port, backend, timeout)
        loaded, rows = _rank_setup(run_config, node_config)
        conn.send(("loaded", os.getpid()))
        while True:
            try:
                kind, job = conn.recv()
            except (EOFError, OSError):
                return  # rank 0 is gone
            if kind == "stop":
                return
            loaded, rows = _rank_setup(job.run_config, job.node_config)
            _prepare(loaded, job)
            conn.send(("ready", None))
            train_rank(loaded.peft_model, rows, pad_id=loaded.tokenizer.pad_token_id,
                       device=loaded.device, job=job)
            conn.send(("done", None))
    except Exception as err:  # tell rank 0 why, then end: the group is rebuilt
        with contextlib.suppress(OSError, ValueError):
            conn.send(("error", f"{type(err).__name__}: {err}"))
        log.error("DDP rank %d failed: %s", rank, err, exc_info=err)
        sys.exit(1)


def _rank_setup(run_config: dict, node_config: dict) -> tuple[Any, list[dict]]:
    """The same model and data the handler loads (cached in this process)."""
    from fedmoe_flwr.config import parse_run_config
    from fedmoe_flwr.node.model import load_base
    from fedmoe_flwr.node.settings import node_data, node_settings

    cfg = parse_run_config(run_config)
    torch.set_num_threads(max(1, cfg.train.torch_threads))
    node = node_settings(node_config, cfg)
    loaded = load_base(cfg.model, node.model_source)
    _, train_rows, _ = node_data(node, cfg, loaded.tokenizer, loaded.fingerprint)
    return loaded, train_rows


def _prepare(loaded: Any, job: Job) -> None:
    """Make the job's adapter active and trainable as on rank 0 (weights come next)."""
    from fedmoe_flwr.config import parse_run_config
    from fedmoe_flwr.node.model import ensure_adapter, freeze_a

    cfg = parse_run_config(job.run_config)
    ensure_adapter(loaded, job.adapter, cfg.model)
    if job.freeze_a:
        freeze_a(loaded, job.adapter)
