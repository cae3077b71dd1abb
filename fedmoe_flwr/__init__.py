"""FedMoE-Flower: federated fine-tuning of per-specialty LoRA experts on Qwen.

The library behind ``server_app.py`` and ``client_app.py``, one sub-package per
room: ``node`` (what runs on a SuperNode: data, 4-bit model, training; the only
torch user), ``server`` (the loop over the Grid, reply intake, experts,
gateway, artifacts), ``merge`` (the math, numpy only), ``routing`` (routers and
centroids) and ``tools`` (the ``fedmoe`` command).  ``config``, ``contract``,
``lora`` and ``weights`` are what both sides of the wire agree on.
"""

from pathlib import Path

__version__ = "0.1.0"
APP_DIR = Path(__file__).resolve().parents[1]  # the app: pyproject.toml, data/, conf/
