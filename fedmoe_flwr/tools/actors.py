"""How many Ray actors a simulation of N nodes gets (``scripts/run.sh``; ``SIM_ACTORS``).

Every actor is a process holding torch and the model (about 0.5 GB with the
tiny Qwen); any actor serves any simulated node, since a node's identity, data
and adapter come with each message.  More actors than cores only time-slice
the same cores, so the pool is one actor per node up to ``max(4, cores)``,
and never more than a quarter of the available memory allows.
"""

from __future__ import annotations

import os
import sys

ACTOR_BYTES = 600 * 2**20  # one actor with the tiny model, measured ~480 MB RSS


def default_actors(nodes: int, cores: int | None = None,
                   available_bytes: int | None = None) -> int:
    """Actors for ``nodes`` simulated nodes on this machine (at least 1)."""
    cores = cores or os.cpu_count() or 1
    if available_bytes is None:
        import psutil

        available_bytes = psutil.virtual_memory().available
    by_memory = available_bytes // 4 // ACTOR_BYTES
    return max(1, min(nodes, max(4, cores), by_memory))


def gpu_share(actors: int, gpus: int | None = None) -> float:
    """GPUs per simulated ClientApp actor: the machine's GPUs shared by ``actors``.

    Ray hides every GPU from an actor that asked for none (it sets
    ``CUDA_VISIBLE_DEVICES`` empty), so on a GPU machine a simulation that does not
    ask trains on the CPU.  ``SIM_GPUS_PER_NODE`` overrides (0 keeps the CPU).
    The share is rounded down to a hundredth, so every actor fits on a GPU at once.
    """
    override = os.environ.get("SIM_GPUS_PER_NODE")
    if override not in (None, ""):
        return float(override)
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count()
    if gpus <= 0:
        return 0.0
    return max(0.01, min(1.0, int(100 * gpus / max(1, actors)) / 100))


def main(argv: list[str]) -> None:
    """Print the default for the number of nodes given as the only argument."""
    if len(argv) != 1 or not argv[0].isdigit() or int(argv[0]) < 1:
        sys.exit("usage: python -m fedmoe_flwr.tools.actors NUM_NODES (a positive integer)")
    print(default_actors(int(argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
