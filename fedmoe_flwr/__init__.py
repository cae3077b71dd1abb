"""FedMoE-Flower: federated fine-tuning of per-specialty LoRA experts on Qwen.

The library behind ``server_app.py`` and ``client_app.py``.  Layers are kept
apart on purpose: the math modules (``staleness``, ``aggregation``,
``gateway``, ``validation``) import neither ``flwr`` nor ``torch``; the
strategies in ``strategies/`` own the server loop; the apps only wire things.
"""

__version__ = "0.1.0"
