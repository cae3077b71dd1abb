"""``train.overlap`` in a simulation: one Ray actor per simulated node keeps it training.

Flower's simulation hands each message to whichever actor of its pool is idle (its
``BasicActorPool`` has no notion of which node an actor served last), so no pool actor
serves one node across messages and a node's training thread could not outlive a
message.  Here each simulated node gets a long-lived Ray actor of its own
(:class:`NodeTrainer`, named after the run, the node and the adapter): the pool actor that
receives the node's train message hands the weights to that actor and returns what it
reports, exactly as a deployed node's message handler does with the training thread of
its warm worker (:mod:`fedmoe_flwr.node.overlap`).  The node's simulated speed
(``sim.speed-factors``) paces its steps there, as it does in a stop-and-wait simulation.

The actor asks Ray for no CPU (a CPU would take a slot from the pool that delivers the
messages) and lives while a pool actor holds a handle to it (each keeps the handles it
used), so it ends with the simulation.  It loads its own copy of the base model, and
does so while the node registers (:func:`start_node_trainer`, waited for by
:func:`wait_ready`): a deployed warm worker has loaded its model when it registers, and the
server's training clock starts after registration, so a load inside the first train
message would charge the overlapped node a start-up that stop-and-wait pays outside it.
"""

from __future__ import annotations

from typing import Any

from fedmoe_flwr.node.overlap import ContinuousTrainer, Progress, configured_trainer
from fedmoe_flwr.node.training import TrainSpec
from fedmoe_flwr.weights import Weights

_ACTOR: Any = None  # the Ray actor class, made on first use (ray is imported only then)
# Handles held by this process: Ray ends an actor that is not detached once no handle to it
# is left, so a handle dropped after one message would end the node's training with it.
_HANDLES: dict[str, Any] = {}


class NodeTrainer:
    """One simulated node's adapter, trained without pause in a Ray actor of its own."""

    def __init__(self, run_config: dict, node_config: dict, adapter: str,
                 torch_threads: int) -> None:
        import torch

        from fedmoe_flwr.config import parse_run_config
        from fedmoe_flwr.logs import setup_logging
        from fedmoe_flwr.node.model import ensure_adapter, load_base
        from fedmoe_flwr.node.settings import node_data, node_settings

        setup_logging()
        torch.set_num_threads(torch_threads)  # what the pool actor that trains it would use
        self.cfg = parse_run_config(run_config)
        self.node = node_settings(node_config, self.cfg)
        self.loaded = load_base(self.cfg.model, self.node.model_source)
        self.adapter = adapter
        ensure_adapter(self.loaded, adapter, self.cfg.model)
        _, self.rows, _ = node_data(self.node, self.cfg, self.loaded.tokenizer,
                                    self.loaded.fingerprint)
        self.trainer: ContinuousTrainer | None = None  # made by the first train message

    def ready(self) -> bool:
        """Answered once the model is loaded (registration waits for it)."""
        return True

    def exchange(self, received: Weights, version: int, spec: TrainSpec) -> Progress:
        """Adopt the newest weights, wait for the sync boundary, report the progress."""
        from fedmoe_flwr.node.simulation import pacer

        if self.trainer is None:
            self.trainer = configured_trainer(
                self.loaded, self.adapter, self.rows, spec, self.cfg,
                after_step=pacer(self.node.speed_factor, self.cfg.sim.seconds_per_token))
        return self.trainer.exchange(received, version)


def start_node_trainer(run_id: int, node_id: int, run_config: dict, node_config: dict,
                       adapter: str) -> Any:
    """The node's training actor (started if it is not running); its model loads meanwhile."""
    import ray
    import torch

    from fedmoe_flwr.config import ConfigError

    global _ACTOR
    if not ray.is_initialized():
        raise ConfigError("train.overlap in a simulation needs Flower's Ray backend (one "
                          "training actor per node); this simulation has no Ray")
    if _ACTOR is None:
        _ACTOR = ray.remote(NodeTrainer)
    name = f"fedmoe-train-{run_id}-{node_id}-{adapter}"
    if name not in _HANDLES:
        _HANDLES[name] = _ACTOR.options(name=name, get_if_exists=True, num_cpus=0).remote(
            run_config, node_config, adapter, torch.get_num_threads())
    return _HANDLES[name]


def wait_ready(handle: Any) -> None:
    """Block until the actor has its model (a failed load raises here, naming its cause)."""
    import ray

    ray.get(handle.ready.remote())


def simulated_exchange(run_id: int, node_id: int, run_config: dict, node_config: dict,
                       adapter: str, received: Weights, version: int,
                       spec: TrainSpec) -> Progress:
    """The node's reply from its own training actor (started at registration, or now)."""
    import ray

    handle = start_node_trainer(run_id, node_id, run_config, node_config, adapter)
    return ray.get(handle.exchange.remote(received, version, spec))
